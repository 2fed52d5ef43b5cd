"""``make deploy ENV=dev|prod [PARAMS="Name=value ..."]``: the preflight, then ``sam deploy``.

python -m deploy preflight --env prod --params "OidcClientId=..."   # exit 1 and a list when something is missing
python -m deploy sam --env prod --params "OidcClientId=..."         # sam deploy with samconfig's values plus PARAMS
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from deploy.check import ROOT, deploy_parameters
from deploy.preflight import preflight, render
from devstack.template import parse_overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy")
    parser.add_argument("command", choices=["preflight", "sam"])
    parser.add_argument("--env", required=True, help="the samconfig.toml environment (dev, prod)")
    parser.add_argument("--params", default="", help='the deployer\'s own parameter values, "Name=value ..." (make deploy PARAMS=...)')
    parser.add_argument("--offline", action="store_true", help="preflight: do not look the secrets up in AWS")
    arguments = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" goes to sam deploy as it is (make deploy SAM_FLAGS=...).
    sam_flags = arguments[arguments.index("--") + 1 :] if "--" in arguments else []
    args = parser.parse_args(arguments[: arguments.index("--")] if "--" in arguments else arguments)
    extra = parse_overrides(args.params)
    if args.command == "preflight":
        outcome = preflight(args.env, extra, None if args.offline else _secrets_client)
        print(render(outcome), file=sys.stdout if outcome.ok else sys.stderr)
        return 0 if outcome.ok else 1
    # sam deploy's --parameter-overrides replaces samconfig's list, so it gets the two merged.
    merged = " ".join(f"{name}={_quoted(value)}" for name, value in deploy_parameters(args.env, extra).items())
    sam = shutil.which("sam") or str(Path(sys.executable).with_name("sam"))
    command = [sam, "deploy", "--config-env", args.env, "--parameter-overrides", merged, *sam_flags]
    print("+ " + " ".join(command), flush=True)
    os.chdir(ROOT)
    os.execv(sam, command)  # noqa: S606 - the SAM CLI from the venv, with our own arguments


def _quoted(value: str) -> str:
    return f'"{value}"' if any(c in value for c in ' "') else value


def _secrets_client(region: str) -> object:
    import boto3

    return boto3.client("secretsmanager", region_name=region)


if __name__ == "__main__":
    sys.exit(main())
