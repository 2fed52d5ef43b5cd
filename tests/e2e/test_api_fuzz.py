"""Schemathesis over /openapi.json on a stack of its own, as a signed-in user: no 5xx, every
response (status, media type, headers, body) as documented, invalid input refused, a wrong
method answered 405, a protected route refusing a request without credentials.

It runs on its own stack because it hammers the sign-in rate limit and the sandbox's state,
which the other end-to-end tests share. ``make fuzz`` is the same run with more examples.
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.running import RunningStack
from fuzz.__main__ import run_schemathesis

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = RunningStack(tmp_path_factory.mktemp("fuzz-stack"))
    yield running
    running.stop()


def test_every_documented_operation_keeps_its_contract_under_fuzzing(fuzz_stack: RunningStack, tmp_path: Path) -> None:
    document = httpx.get(f"{fuzz_stack.api_url}/openapi.json", timeout=30).json()
    fuzzed = {f"{method.upper()} {path}" for path, operations in document["paths"].items() for method in operations}
    fuzzed = {name for name in fuzzed if " /sandbox/" not in name}  # schemathesis.toml says why

    run = run_schemathesis(
        fuzz_stack,
        ["--max-examples", "12", "--seed", "20261122", "--workers", "2", "--report", "junit", "--report-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )

    assert run.returncode == 0, run.stdout[-20000:]
    report = ET.parse(next(tmp_path.glob("*.xml")))  # noqa: S314 - the report schemathesis just wrote
    tested = {case.get("name") for case in report.iter("testcase")}
    assert fuzzed <= tested, sorted(fuzzed - tested)
    assert not [case for case in report.iter("testcase") if case.find("failure") is not None or case.find("error") is not None]
