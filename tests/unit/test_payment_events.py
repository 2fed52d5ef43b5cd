"""The payment event's shape: what the receiver accepts after verification, and what it refuses."""

from __future__ import annotations

import json

import pytest
from payrail.domain.payout_status import PayoutStatus
from payrail.errors import ValidationFailed
from payrail.webhooks.events import parse_event


def _raw(**document: object) -> bytes:
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("event_type", "target"),
    [("payout.processing", PayoutStatus.PROCESSING), ("payout.paid", PayoutStatus.PAID), ("payout.failed", PayoutStatus.FAILED)],
)
def test_payout_event_types_map_to_their_status(event_type: str, target: PayoutStatus) -> None:
    event = parse_event(_raw(id="evt_1", type=event_type, created_at="2026-11-22T16:00:00Z", data={"payout_id": "po_1"}))
    assert event.target is target
    assert event.payout_data().payout_id == "po_1"


def test_an_unknown_type_is_accepted_with_any_data_and_moves_nothing() -> None:
    event = parse_event(_raw(id="evt_2", type="refund.created", created_at="2026-11-22T16:00:00Z", data={"anything": [1, 2]}))
    assert event.target is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        _raw(type="payout.paid", created_at="2026-11-22T16:00:00Z", data={"payout_id": "po_1"}),
        _raw(id="", type="payout.paid", created_at="2026-11-22T16:00:00Z", data={"payout_id": "po_1"}),
        _raw(id="evt with spaces", type="payout.paid", created_at="2026-11-22T16:00:00Z", data={"payout_id": "po_1"}),
        _raw(id="evt_3", type="payout.paid", data={"payout_id": "po_1"}),
        _raw(id="evt_4", type="payout.paid", created_at="2026-11-22T16:00:00Z", data={}),
        _raw(id="evt_5", type="payout.paid", created_at="2026-11-22T16:00:00Z", data={"payout_id": 7}),
        _raw(id="evt_6", type="payout.paid", created_at="2026-11-22T16:00:00Z", data="po_1"),
    ],
    ids=[
        "empty",
        "not-json",
        "array",
        "no-id",
        "empty-id",
        "unsafe-id",
        "no-created_at",
        "no-payout",
        "payout-not-string",
        "data-not-object",
    ],
)
def test_malformed_events_are_validation_errors(raw: bytes) -> None:
    with pytest.raises(ValidationFailed):
        parse_event(raw)


@pytest.mark.parametrize(
    ("target", "outcome", "finished"),
    [
        ("paid", "applied", [("PayoutsFinished", "status", "paid")]),
        ("failed", "applied", [("PayoutsFinished", "status", "failed")]),
        ("processing", "applied", []),
        ("paid", "duplicate", []),
        ("paid", "ignored", []),
    ],
)
def test_a_payout_that_finishes_is_counted_once_by_status(
    monkeypatch: pytest.MonkeyPatch, target: str, outcome: str, finished: list
) -> None:
    from contextlib import contextmanager

    from payrail.db.payment_events import Outcome, StatusChange
    from payrail.domain.payout_status import PayoutStatus
    from payrail.webhooks import apply

    emitted: list[tuple[str, str, str]] = []

    @contextmanager
    def recorder(name: str, **_: object):
        class Metric:
            def add_dimension(self, name: str, value: str) -> None:
                emitted.append((metric_name, name, value))

        metric_name = name
        yield Metric()

    monkeypatch.setattr(apply, "single_metric", recorder)
    monkeypatch.setattr(apply, "apply_status_change", lambda change: (Outcome(outcome), None))
    apply.apply_change(StatusChange("evt_1", f"payout.{target}", "po_1", PayoutStatus(target)))
    assert [entry for entry in emitted if entry[0] == "PayoutsFinished"] == finished
