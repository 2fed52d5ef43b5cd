"""Reconciliation under a backlog: it re-enqueues no more silent payouts than messages are
certainly missing from the payouts queue. Each test has a table and queues of its own, since the
bound counts every silent payout in the table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from payrail import clock
from payrail.db import keys

from tests.support import Resources, load_event
from tests.webhooks_support import InProcess, drain, get_item, put_payout, set_attribute


@pytest.fixture
def alone(moto_endpoint: str) -> dict:
    resources = Resources(moto_endpoint)
    return {"resources": resources, "scheduled": InProcess(resources, "ScheduledSyncFunction")}


def reconcile(world: dict) -> dict[str, Any]:
    return world["scheduled"](load_event("scheduled_sync/scheduled.json", time=datetime.now(UTC).isoformat()))["reconcile_payouts"]


def silent_payouts(world: dict, hours: list[int]) -> list[dict[str, Any]]:
    """Old pending payouts whose messages no worker received for ten minutes, one per age in hours."""
    items = [put_payout(world["resources"], "pending", age=timedelta(hours=h)) for h in hours]
    for item in items:
        set_attribute(world["resources"], keys.payout(item["id"]), "received_at", clock.text(datetime.now(UTC) - timedelta(minutes=10)))
    return items


def waiting_in_queue(world: dict, count: int) -> None:
    sqs = world["resources"].client("sqs")
    for index in range(count):
        sqs.send_message(QueueUrl=world["resources"].ref("PayoutsQueue"), MessageBody=json.dumps({"payout_id": f"po_other{index}"}))


def test_while_the_queue_holds_as_many_messages_as_payouts_look_silent_none_is_re_enqueued(alone: dict) -> None:
    # Given two silent payouts and two messages waiting in the payouts queue: both could be theirs,
    # behind a backlog longer than the in-flight time; and a third whose hand-off failed (it has none)
    silent = silent_payouts(alone, [3, 2])
    failed = put_payout(alone["resources"], "pending", age=timedelta(hours=1))
    set_attribute(alone["resources"], keys.outbox(failed["id"], failed["created_at"]), "hand_off_failed", True)
    waiting_in_queue(alone, 2)
    # When reconciliation runs
    result = reconcile(alone)
    # Then only the payout certainly without a message goes back on the queue
    sent = [json.loads(m["Body"])["payout_id"] for m in drain(alone["resources"], "PayoutsQueue")]
    assert sorted(sent) == sorted([failed["id"], "po_other0", "po_other1"])
    assert result["message_may_be_in_backlog"] == 2
    for item in silent:  # each keeps its marker, never claimed for a re-enqueue
        left = get_item(alone["resources"], keys.outbox(item["id"], item["created_at"]))
        assert left is not None
        assert "requeue_count" not in left


def test_with_fewer_messages_waiting_than_payouts_look_silent_the_oldest_of_the_rest_are_re_enqueued(alone: dict) -> None:
    # Given three silent payouts and one message waiting: at least two messages are missing
    oldest, older, _newest = silent_payouts(alone, [3, 2, 1])
    waiting_in_queue(alone, 1)
    # When reconciliation runs
    result = reconcile(alone)
    # Then the two oldest are re-enqueued (the queue hands out its oldest messages first, so theirs
    # would have come before the newest's), and the newest is left to the message that may be its own
    sent = [json.loads(m["Body"])["payout_id"] for m in drain(alone["resources"], "PayoutsQueue")]
    assert sorted(sent) == sorted([oldest["id"], older["id"], "po_other0"])
    assert result["requeued"] == 2
    assert result["message_may_be_in_backlog"] == 1
