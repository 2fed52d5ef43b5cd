"""The smoke test a deployer runs against a deployed dev stack passes against the local stack,
and says which step failed when one does."""

from __future__ import annotations

import httpx
import pytest

from scripts.smoke import smoke
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e


def test_the_smoke_test_passes_against_a_working_dev_stack(stack: RunningStack, capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke(stack.api_url, payout_timeout=60)
    output = capsys.readouterr().out
    for step in ("health", "sandbox sign-in", "sandbox funding", "payout to paid", "bank link and sync"):
        assert f"ok   {step}" in output


def test_the_smoke_test_names_the_step_that_fails(capsys: pytest.CaptureFixture[str]) -> None:
    # Given an API whose health check answers 503
    transport = httpx.MockTransport(lambda request: httpx.Response(503, json={"status": "failing"}))
    client = httpx.Client(base_url="https://api.example.com", transport=transport)
    # Then the smoke test fails at its first step and stops there
    assert not smoke("https://api.example.com", client=client)
    assert capsys.readouterr().out.startswith("FAIL health: AssertionError: 503")
