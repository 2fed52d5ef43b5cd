"""The pipeline deploys with short-lived credentials only, smoke-tests dev, and reaches prod only
through dev and an approval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github/workflows/deploy.yml"
DOCUMENT: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
JOBS: dict[str, Any] = DOCUMENT["jobs"]


def _runs(job: str) -> str:
    return "\n".join(step.get("run", "") for step in JOBS[job]["steps"])


def test_no_long_lived_aws_keys_anywhere() -> None:
    text = WORKFLOW.read_text()
    assert "AWS_ACCESS_KEY_ID" not in text
    assert "aws-secret-access-key" not in text
    for job in ("deploy-dev", "deploy-prod"):
        assert JOBS[job]["permissions"]["id-token"] == "write"
        credentials = next(
            step for step in JOBS[job]["steps"] if str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials")
        )
        assert set(credentials["with"]) == {"role-to-assume", "aws-region"}


def test_tests_gate_dev_and_dev_with_its_smoke_test_gates_prod() -> None:
    assert "make test" in (Path(WORKFLOW.parents[2]) / ".ci/run").read_text()
    assert ".ci/run" in _runs("test")
    assert JOBS["deploy-dev"]["needs"] == "test"
    assert "make deploy ENV=dev" in _runs("deploy-dev")
    assert "scripts/smoke.py" in _runs("deploy-dev")
    assert JOBS["deploy-prod"]["needs"] == "deploy-dev"
    assert JOBS["deploy-prod"]["environment"] == "prod"  # its required reviewers approve
    assert "make deploy ENV=prod" in _runs("deploy-prod")
    assert JOBS["deploy-dev"]["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
