"""``python -m fuzz``: start a fresh local stack, sign a user in through the sandbox identity
provider, and run Schemathesis over every documented operation with that user's token.

What is checked, and the few operations where a check cannot apply, is in schemathesis.toml.
Extra arguments go to ``schemathesis run`` (``python -m fuzz --max-examples 200``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from devstack.running import ROOT, RunningStack
from scenarios.signin import sign_in

FUZZ_USER = "fuzz@example.com"


def run_schemathesis(stack: RunningStack, arguments: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    """``schemathesis run`` against ``stack``'s document, as a signed-in user."""
    with httpx.Client(base_url=stack.api_url, timeout=30) as api:
        token = sign_in(api, FUZZ_USER)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(ROOT / "schemathesis.toml"),
        "run",
        f"{stack.api_url}/openapi.json",
        *arguments,
    ]
    environment = {**os.environ, "PAYRAIL_FUZZ_TOKEN": token, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, cwd=ROOT, env=environment, text=True, check=False, **options)  # type: ignore[call-overload]  # noqa: S603


def main() -> int:
    print("Starting a fresh local stack (moto, every function of template.yaml)…", flush=True)
    stack = RunningStack(Path(tempfile.mkdtemp(prefix="payrail-fuzz-")))
    try:
        print(f"  API {stack.api_url} · log {stack.log_path}", flush=True)
        return run_schemathesis(stack, sys.argv[1:] or ["--max-examples", "100", "--workers", "2"]).returncode
    finally:
        stack.stop()


if __name__ == "__main__":
    raise SystemExit(main())
