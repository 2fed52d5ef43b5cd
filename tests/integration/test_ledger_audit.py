"""The scheduled ledger audit, in-process on moto: it recomputes every balance changed since its
last run from the ledger, counts and logs a difference, and never changes a balance."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from payrail.db import keys

from tests.payouts_support import VALID_BODY, call, fund, http_event, mint_token
from tests.support import Resources, load_event
from tests.webhooks_support import InProcess, captured_logs, get_item, log_lines


@pytest.fixture
def audit(resources: Resources) -> InProcess:
    return InProcess(resources, "LedgerAuditFunction")


def run(audit: InProcess, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], int]:
    """One scheduled run: its result and the LedgerDifferences it counted (from the metric it emitted)."""
    capsys.readouterr()
    result = audit(load_event("ledger_audit/scheduled.json", time=datetime.now(UTC).isoformat()))["audit_ledger"]
    counted = [
        json.loads(line)["LedgerDifferences"]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and '"LedgerDifferences"' in line
    ]
    assert len(counted) == 1, counted
    return result, int(counted[0][0] if isinstance(counted[0], list) else counted[0])


def test_balances_that_changed_are_recomputed_and_found_balanced(resources: Resources, audit: InProcess, capsys) -> None:
    # Given two funded users, one with a payout reserved
    fund(resources, "ann", 50_000)
    fund(resources, "ben", 7_000, "UGX")
    api = InProcess(resources, "PayoutsApiFunction")
    headers = {"authorization": f"Bearer {mint_token(resources, 'ann')}", "idempotency-key": "audit-1"}
    assert call(api, http_event("POST", "/payouts", body={**VALID_BODY, "amount": 20_000}, headers=headers))[0] == 201
    # When the audit runs
    result, differences = run(audit, capsys)
    # Then both balances were recomputed from their ledgers and agree
    assert result == {"balanced": 2}
    assert differences == 0
    assert get_item(resources, keys.ledger_audit_state()) is not None


def test_a_difference_is_logged_counted_and_left_as_it_is(resources: Resources, audit: InProcess, capsys) -> None:
    # Given a balance that no longer agrees with its ledger (a bug, simulated by editing the item)
    fund(resources, "cleo", 10_000)
    table = resources.ref("Table")
    key = {"pk": {"S": keys.balance("cleo", "ZAR")["pk"]}, "sk": {"S": "ZAR"}}
    resources.client("dynamodb").update_item(
        TableName=table, Key=key, UpdateExpression="SET available = :wrong", ExpressionAttributeValues={":wrong": {"N": "10001"}}
    )
    # When the audit runs
    with captured_logs() as logs:
        result, differences = run(audit, capsys)
    # Then it says so, in the log and the alarmed metric, and the balance is untouched
    assert result == {"different": 1}
    assert differences == 1
    (line,) = log_lines(logs, "balance differs from its ledger")
    assert (line["user_id"], line["currency"], line["available"], line["ledger_available"]) == ("cleo", "ZAR", 10_001, 10_000)
    assert get_item(resources, keys.balance("cleo", "ZAR"))["available"] == 10_001


def test_a_later_run_audits_only_what_changed_since(resources: Resources, audit: InProcess, capsys, monkeypatch) -> None:
    from payrail.payouts import ledger_audit

    # Given a run has audited one balance, and looks back no further than its own last run
    monkeypatch.setattr(ledger_audit, "INDEX_LAG", ledger_audit.INDEX_LAG * 0)
    fund(resources, "dora", 1_000)
    assert run(audit, capsys)[0] == {"balanced": 1}
    # When nothing changes, the next run audits nothing; when another user is funded, only that balance
    assert run(audit, capsys)[0] == {}
    fund(resources, "eve", 2_000)
    assert run(audit, capsys)[0] == {"balanced": 1}
