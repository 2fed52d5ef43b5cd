"""Cold start per function against the floor, measured alternately in one run.

A cold start here is a fresh interpreter that imports the function's handler module (with only
its code directory and layers importable and exactly its template environment, as the local
runtime and Lambda load it) and creates the AWS clients its template policies grant. The floor is
a fresh interpreter that imports boto3, pydantic and Powertools and creates one client. Each
round runs the floor and every function once, in a shuffled order, so machine noise spreads
evenly; figures are medians.

Both run without the development virtualenv (``python -I -S``), over a site-packages holding
only what Lambda would give that function: its layers' requirements and the runtime's boto3 (built
once per set of layers under .bench/). The development tools change what a cold start imports:
with them installed, httpx loads its command-line interface (rich, click) and botocore the CRT.
Likewise a function without the crypto layer must not be measured with cryptography importable:
PyJWT imports it when it can, and on AWS it cannot.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from devstack.functions import function_environment
from devstack.resources import Provisioner
from devstack.stack import template_parameters
from devstack.template import FunctionSpec, Template

ROOT = Path(__file__).resolve().parent.parent
FLOOR = "import boto3, pydantic, aws_lambda_powertools; boto3.client('dynamodb')"
_POLICY_SERVICES = {"DynamoDB": "dynamodb", "SQS": "sqs", "KMS": "kms", "SecretsManager": "secretsmanager", "SSM": "ssm"}


class _OfflineProvisioner(Provisioner):
    """Names resources without creating them: a cold start needs their names, not moto."""

    def _physical(self, logical_id: str) -> Any:
        from devstack.resources import Physical

        kind = self.template.resources[logical_id].get("Type", "")
        name = f"{self.template.stack_name}-{logical_id}"
        arn = f"arn:aws:local:us-east-1:123456789012:{name}"
        return Physical(
            f"http://127.0.0.1:9/123456789012/{name}" if kind == "AWS::SQS::Queue" else name,
            {"Arn": arn, "QueueName": name, "ApiEndpoint": "http://127.0.0.1:3000", "StreamArn": f"{arn}/stream/local"},
        )


def services_of(resource: dict[str, Any]) -> list[str]:
    """The AWS services a function's policies let it call: the clients it creates."""
    found: set[str] = set()
    for policy in (resource.get("Properties") or {}).get("Policies") or []:
        if isinstance(policy, dict) and "Statement" in policy:
            for statement in policy["Statement"]:
                actions = statement.get("Action", [])
                for action in [actions] if isinstance(actions, str) else actions:
                    found.add(action.split(":")[0])
        elif isinstance(policy, dict):
            for name in policy:
                found.update(service for prefix, service in _POLICY_SERVICES.items() if name.startswith(prefix) or f"{prefix}" in name)
    return sorted(found)


PIP_INSTALL = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]


def lambda_site(layer_dirs: list[Path] | None = None) -> Path:
    """A site-packages with these layers' requirements and the pinned boto3, as Lambda has them.

    Without ``layer_dirs``, the common layer's: what the floor and most functions have.
    """
    layers = layer_dirs or [ROOT / "layers/common"]
    requirement_files = [layer / "requirements.txt" for layer in layers if (layer / "requirements.txt").exists()]
    layer_requirements = "".join(path.read_text() for path in requirement_files)
    boto_pins = re.findall(r"^(?:boto3|botocore)==\S+$", (ROOT / "requirements-dev.txt").read_text(), re.MULTILINE)
    digest = hashlib.sha256((layer_requirements + "\n".join(boto_pins)).encode()).hexdigest()[:12]
    site = ROOT / ".bench" / f"site-{digest}"
    if not (site / ".complete").exists():
        print(f"bench: building a Lambda-like site-packages in {site.relative_to(ROOT)} (once) …", file=sys.stderr, flush=True)
        subprocess.run(  # noqa: S603 - pip of this interpreter, our own requirement files
            [*PIP_INSTALL, "--target", str(site), *(f"-r{path}" for path in requirement_files), *boto_pins],
            check=True,
        )
        (site / ".complete").touch()
    return site


def _script(paths: list[str], body: str) -> str:
    return f"import sys; sys.path[:0] = {paths!r}\n{body}"


def _function_script(spec: FunctionSpec, services: list[str], site: Path) -> str:
    module = spec.handler.rpartition(".")[0].replace("/", ".")
    paths = [str(spec.code_dir), *(str(layer) for layer in spec.layer_dirs), str(site)]
    body = f"import importlib; importlib.import_module({module!r})\nfrom payrail import aws\n"
    return _script(paths, body + "".join(f"aws.client({service!r})\n" for service in services))


def _time(script: str, environment: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    # -I -S: no user site, no PYTHON* variables, no virtualenv site-packages; only sys.path above.
    subprocess.run([sys.executable, "-I", "-S", "-c", script], env=environment, cwd=cwd, check=True, capture_output=True)  # noqa: S603
    return time.perf_counter() - started


def measure(runs: int = 7) -> dict[str, Any]:
    template = Template(ROOT / "template.yaml", template_parameters(ROOT / "template.yaml", "dev", {}))
    _OfflineProvisioner(template, "http://127.0.0.1:9", "http://127.0.0.1:3000")
    functions = template.functions()
    floor_environment = {
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
    }
    subjects: dict[str, tuple[str, dict[str, str], Path]] = {"floor": (_script([str(lambda_site())], FLOOR), floor_environment, ROOT)}
    for logical_id, spec in functions.items():
        environment = function_environment(spec, logical_id, "http://127.0.0.1:9")
        script = _function_script(spec, services_of(template.resources[logical_id]), lambda_site(spec.layer_dirs))
        subjects[logical_id] = (script, environment, spec.code_dir)
    samples: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(runs):
        order = list(subjects)
        random.shuffle(order)
        for name in order:
            script, environment, cwd = subjects[name]
            samples[name].append(_time(script, environment, cwd))
    floor = statistics.median(samples["floor"])
    rows = [
        {
            "function": name,
            "median_ms": round(statistics.median(values) * 1000, 1),
            "ratio_to_floor": round(statistics.median(values) / floor, 2),
        }
        for name, values in samples.items()
    ]
    return {"runs": runs, "floor_ms": round(floor * 1000, 1), "rows": sorted(rows, key=lambda r: r["function"] != "floor")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    result = measure(parser.parse_args().runs)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
