"""The reliability suite at CI size: `make chaos` runs the same scenario with 500 payouts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.e2e


def test_invariants_hold_under_faults_crashes_duplicates_and_a_webhook_storm() -> None:
    # Given a fresh stack with provider faults, duplicate SQS deliveries and killed invocations,
    # and every client's merchant webhook endpoint on a receiver failing 30% and stalling 10%,
    # When 40 payouts are created by 4 clients (some keys twice) and every webhook is replayed 3 times
    result = subprocess.run(
        [sys.executable, "-m", "chaos", "--payouts", "40", "--clients", "4", "--forgeries", "20", "--timeout", "300"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    # Then every invariant held: final statuses, no duplicates anywhere, DLQs accounted for, 0 forged accepted
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stderr
    assert '"provider_duplicates": 0' in result.stdout
    assert '"forged_accepted": 0' in result.stdout
    # And every merchant event reached its owner through failed and timed-out attempts: the
    # receiver's faults happened, and the stack recorded the stalls as timed-out attempts
    hooks = json.loads(result.stdout[result.stdout.rindex("\n{\n") :])["merchant_webhooks"]
    assert hooks["events"] == hooks["state_changes"] > 0
    assert hooks["attempts"] > hooks["failed_attempts"] > hooks["slow_attempts"] > 0
    assert hooks["timed_out_attempts_listed"] > 0
    assert hooks["dead_letters"]["WebhookFanOutDLQ"] == 0
