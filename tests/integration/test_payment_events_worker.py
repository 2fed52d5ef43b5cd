"""The payment-events worker: each event applied exactly once, forward only, in one transaction
with its deduplication record; late and repeated events recorded as ignored."""

from __future__ import annotations

import json
import random
import threading
from datetime import timedelta

import pytest
from payrail.db import keys

from tests.support import Resources
from tests.webhooks_support import InProcess, captured_logs, event_body, event_id_of, get_item, log_lines, put_payout, sqs_event


@pytest.fixture(scope="module")
def world(moto_endpoint: str) -> dict:
    resources = Resources(moto_endpoint)
    return {"resources": resources, "worker": InProcess(resources, "PaymentEventsWorkerFunction")}


def payout(world: dict, pid: str) -> dict:
    item = get_item(world["resources"], keys.payout(pid))
    assert item is not None
    return item


def record(world: dict, event_id: str) -> dict | None:
    return get_item(world["resources"], keys.webhook_event(event_id))


def marker_exists(world: dict, item: dict) -> bool:
    return get_item(world["resources"], keys.outbox(item["id"], item["created_at"])) is not None


def deliver(world: dict, *bodies: bytes, correlation_id: str = "cid-test") -> list[str]:
    """Run the worker on one batch; returns the message ids it reported as failed."""
    answer = world["worker"](sqs_event(list(bodies), correlation_id))
    return [failure["itemIdentifier"] for failure in answer["batchItemFailures"]]


def test_a_paid_event_pays_the_payout_and_removes_its_unfinished_marker(world: dict) -> None:
    item = put_payout(world["resources"], "submitted")
    body = event_body("payout.paid", item["id"])

    assert deliver(world, body) == []

    stored = payout(world, item["id"])
    assert (stored["status"], stored["version"], stored["provider_reference"]) == ("paid", 2, f"prv_{item['id']}")
    assert not marker_exists(world, item)
    assert record(world, event_id_of(body))["outcome"] == "applied"


def test_a_processing_event_moves_the_payout_and_keeps_its_marker(world: dict) -> None:
    item = put_payout(world["resources"], "submitted")

    assert deliver(world, event_body("payout.processing", item["id"])) == []

    assert payout(world, item["id"])["status"] == "processing"
    assert marker_exists(world, item)


@pytest.mark.parametrize(
    ("reported", "reason"),
    [
        # the provider's own words are not shown: the project's generic code and message are
        ("account closed", "provider_failed: The payment provider reported that the payout failed."),
        (None, "provider_failed: The payment provider reported that the payout failed."),
        # a documented rejection code becomes the project's code for it
        ("account_closed", "beneficiary_account_closed: The beneficiary's account is closed."),
    ],
)
def test_a_failed_event_records_a_stable_failure_reason(world: dict, reported: str | None, reason: str) -> None:
    item = put_payout(world["resources"], "processing")

    deliver(world, event_body("payout.failed", item["id"], failure_reason=reported))

    stored = payout(world, item["id"])
    assert (stored["status"], stored["failure_reason"]) == ("failed", reason)
    assert not marker_exists(world, item)


def test_the_same_event_delivered_twice_is_applied_once(world: dict) -> None:
    item = put_payout(world["resources"], "submitted")
    body = event_body("payout.processing", item["id"])

    assert deliver(world, body, body) == []
    assert deliver(world, body) == []

    assert payout(world, item["id"])["version"] == 2
    assert record(world, event_id_of(body))["outcome"] == "applied"


def test_an_a_b_a_sequence_applies_a_and_b_once_each(world: dict) -> None:
    item = put_payout(world["resources"], "submitted")
    a, b = event_body("payout.processing", item["id"]), event_body("payout.paid", item["id"])

    deliver(world, a)
    deliver(world, b)
    deliver(world, a)

    stored = payout(world, item["id"])
    assert (stored["status"], stored["version"]) == ("paid", 3)
    assert record(world, event_id_of(a))["outcome"] == "applied"
    assert record(world, event_id_of(b))["outcome"] == "applied"


def test_processing_arriving_after_paid_is_recorded_as_ignored_and_changes_nothing(world: dict) -> None:
    item = put_payout(world["resources"], "submitted")
    paid, late = event_body("payout.paid", item["id"]), event_body("payout.processing", item["id"])

    deliver(world, paid)
    before = payout(world, item["id"])
    assert deliver(world, late) == []

    assert payout(world, item["id"]) == before
    late_record = record(world, event_id_of(late))
    assert late_record["outcome"] == "ignored"
    assert "paid" in late_record["reason"]


def test_failed_after_paid_cannot_unpay_a_payout(world: dict) -> None:
    item = put_payout(world["resources"], "submitted")

    deliver(world, event_body("payout.paid", item["id"]))
    deliver(world, event_body("payout.failed", item["id"], failure_reason="too late"))

    stored = payout(world, item["id"])
    assert stored["status"] == "paid"
    assert "failure_reason" not in stored


def test_an_event_for_an_unknown_payout_fails_its_record_for_a_retry_and_is_not_recorded(world: dict) -> None:
    known = put_payout(world["resources"], "submitted")
    orphan, fine = event_body("payout.paid", "po_does_not_exist"), event_body("payout.paid", known["id"])
    batch = sqs_event([orphan, fine])

    answer = world["worker"](batch)

    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == [batch["Records"][0]["messageId"]]
    assert record(world, event_id_of(orphan)) is None
    assert payout(world, known["id"])["status"] == "paid"


def test_an_event_retried_after_its_payout_appears_is_applied(world: dict) -> None:
    body = event_body("payout.processing", "po_arrives_later")
    assert len(deliver(world, body)) == 1

    put_payout(world["resources"], "submitted", payout_id="po_arrives_later")

    assert deliver(world, body) == []
    assert payout(world, "po_arrives_later")["status"] == "processing"


def test_an_unknown_event_type_is_recorded_as_ignored_and_logged(world: dict) -> None:
    item = put_payout(world["resources"], "submitted")
    document = {
        "id": "evt_teleport_1",
        "type": "payout.teleported",
        "created_at": "2026-11-22T16:00:00Z",
        "data": {"payout_id": item["id"]},
    }

    with captured_logs() as logs:
        assert deliver(world, json.dumps(document).encode()) == []

    assert record(world, "evt_teleport_1")["outcome"] == "ignored"
    assert payout(world, item["id"])["status"] == "submitted"
    [line] = log_lines(logs, "payment event of an unknown type recorded and ignored")
    assert line["event_type"] == "payout.teleported"


def test_the_correlation_id_of_the_message_is_in_the_workers_logs(world: dict) -> None:
    item = put_payout(world["resources"], "submitted")

    with captured_logs() as logs:
        deliver(world, event_body("payout.paid", item["id"]), correlation_id="cid-from-the-webhook")

    handled = log_lines(logs, "payment event handled")
    assert [line["correlation_id"] for line in handled] == ["cid-from-the-webhook"]
    assert handled[0]["payout_id"] == item["id"]


def test_concurrent_conflicting_events_leave_exactly_one_terminal_status(world: dict) -> None:
    # Given one payout and, delivered at once from many threads, paid and failed events (each twice)
    item = put_payout(world["resources"], "submitted")
    bodies = [
        event_body("payout.paid", item["id"]),
        event_body("payout.failed", item["id"], failure_reason="x"),
        event_body("payout.processing", item["id"]),
    ]
    barrier = threading.Barrier(len(bodies) * 2)

    failures: list[object] = []

    def run(body: bytes) -> None:
        barrier.wait()
        failures.extend(world["worker"].raw(sqs_event([body]))["batchItemFailures"])

    with world["worker"].environment():
        threads = [threading.Thread(target=run, args=(body,)) for body in bodies * 2]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert failures == []
    stored = payout(world, item["id"])
    outcomes = {event_id_of(b): record(world, event_id_of(b))["outcome"] for b in bodies}
    assert stored["status"] in ("paid", "failed")
    assert stored["version"] - 1 == sum(1 for outcome in outcomes.values() if outcome == "applied")
    applied_terminal = [json.loads(b)["type"] for b in bodies[:2] if outcomes[event_id_of(b)] == "applied"]
    assert applied_terminal == [f"payout.{stored['status']}"]


def test_every_event_redelivered_three_times_in_shuffled_order_is_applied_once(world: dict) -> None:
    # Given payouts each with a processing event and a terminal event
    rng = random.Random(5)
    finals = {}
    events = []
    for n in range(6):
        item = put_payout(world["resources"], "submitted", age=timedelta(minutes=n))
        final = "paid" if n % 2 else "failed"
        finals[item["id"]] = final
        events.append(event_body("payout.processing", item["id"]))
        events.append(event_body(f"payout.{final}", item["id"], failure_reason="declined" if final == "failed" else None))
    # When every event is delivered three times, shuffled, in batches of up to ten
    deliveries = events * 3
    rng.shuffle(deliveries)
    for start in range(0, len(deliveries), 7):
        assert deliver(world, *deliveries[start : start + 7]) == []

    # Then each payout ends in its final status, and its version counts exactly the events applied to it
    for pid, final in finals.items():
        stored = payout(world, pid)
        own = [b for b in events if json.loads(b)["data"]["payout_id"] == pid]
        applied = [b for b in own if record(world, event_id_of(b))["outcome"] == "applied"]
        assert stored["status"] == final
        assert stored["version"] == 1 + len(applied)
        assert f"payout.{final}" in [json.loads(b)["type"] for b in applied]
        assert not marker_exists(world, stored)
