"""The scheduled reconciliation: pending payouts re-enqueued, stuck ones brought to the provider's
status through the exactly-once path, leftover markers of finished payouts removed."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from payrail import clock
from payrail.clock import Deadline
from payrail.db import keys
from payrail.payouts import reconciliation
from payrail.payouts.provider import PaymentProvider
from payrail.scheduled import RESERVE_SECONDS
from payrail.settings import ScheduledJobsSettings

from tests.payouts_support import VALID_BODY, call, fund, http_event, mint_token
from tests.support import Resources, load_event
from tests.webhooks_support import InProcess, Recorder, drain, event_body, get_item, put_payout, set_attribute, sqs_event

OLD = timedelta(hours=1)


@pytest.fixture(scope="module")
def provider() -> Iterator[Recorder]:
    """The payment provider's status endpoint: GET /sandbox/payments/v1/payouts/{reference}."""
    fake = Recorder()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def world(moto_endpoint: str, provider: Recorder) -> dict:
    resources = Resources(moto_endpoint, overrides={"PublicBaseUrl": f"http://127.0.0.1:{provider.port}"})
    return {
        "resources": resources,
        "scheduled": InProcess(resources, "ScheduledSyncFunction"),
        "worker": InProcess(resources, "PaymentEventsWorkerFunction"),
    }


def reconcile(world: dict) -> dict:
    drain(world["resources"], "PayoutsQueue")
    event = load_event("scheduled_sync/scheduled.json", time=datetime.now(UTC).isoformat())
    return world["scheduled"](event)["reconcile_payouts"]


def payout(world: dict, pid: str) -> dict:
    item = get_item(world["resources"], keys.payout(pid))
    assert item is not None
    return item


def marker(world: dict, item: dict) -> dict | None:
    return get_item(world["resources"], keys.outbox(item["id"], item["created_at"]))


def test_a_pending_payout_past_the_grace_period_is_re_enqueued_and_a_fresh_one_is_not(world: dict) -> None:
    old = put_payout(world["resources"], "pending", age=OLD)
    fresh = put_payout(world["resources"], "pending")
    drain(world["resources"], "PayoutsQueue")
    event = load_event("scheduled_sync/scheduled.json", time=datetime.now(UTC).isoformat())

    world["scheduled"](event)

    sent = [json.loads(m["Body"])["payout_id"] for m in drain(world["resources"], "PayoutsQueue")]
    assert old["id"] in sent
    assert fresh["id"] not in sent
    assert payout(world, old["id"])["status"] == "pending"


def test_a_pending_payout_is_re_enqueued_once_by_overlapping_runs_and_then_ever_less_often(world: dict) -> None:
    # Given a pending payout past the grace period (its message may be waiting behind a backlog)
    item = put_payout(world["resources"], "pending", age=OLD)
    drain(world["resources"], "PayoutsQueue")
    now = datetime.now(UTC)
    settings = world["resources"].settings("ScheduledSyncFunction", ScheduledJobsSettings)
    provider = PaymentProvider(settings)
    with world["scheduled"].environment():
        grace = timedelta(seconds=settings.grace_seconds)

        def run(at: datetime) -> int:
            reconciliation.reconcile_payouts(at, Deadline(60), settings, provider)
            return sent_payout_ids(world).count(item["id"])

        # When four runs overlap
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda _: reconciliation.reconcile_payouts(now, Deadline(60), settings, provider), range(4)))
        overlapping = sent_payout_ids(world).count(item["id"])
        # Then it went back on the queue once; and after that only twice the grace period after
        # the last time, then four times it
        assert overlapping == 1
        assert [run(now + grace), run(now + 2 * grace + timedelta(seconds=1))] == [0, 1]
        since = now + 2 * grace + timedelta(seconds=1)
        assert [run(since + 3 * grace), run(since + 4 * grace + timedelta(seconds=1))] == [0, 1]


def sent_payout_ids(world: dict) -> list[str]:
    return [json.loads(m["Body"])["payout_id"] for m in drain(world["resources"], "PayoutsQueue")]


def test_a_pending_payout_whose_message_is_in_flight_is_left_to_it_and_one_whose_message_fell_silent_is_re_enqueued(
    world: dict,
) -> None:
    # Given two old pending payouts: a worker received the message of one a minute ago (it is out a
    # backoff), and the other's ten minutes ago (longer than any retry delay: the message is gone)
    now = datetime.now(UTC)
    in_flight = put_payout(world["resources"], "pending", age=OLD)
    set_attribute(world["resources"], keys.payout(in_flight["id"]), "received_at", clock.text(now - timedelta(seconds=60)))
    silent = put_payout(world["resources"], "pending", age=OLD)
    set_attribute(world["resources"], keys.payout(silent["id"]), "received_at", clock.text(now - timedelta(minutes=10)))
    # When reconciliation runs
    reconcile(world)
    sent = sent_payout_ids(world)
    # Then only the payout whose message is lost goes back on the queue
    assert silent["id"] in sent
    assert in_flight["id"] not in sent


def test_a_re_enqueued_payout_carries_its_ticket_so_it_takes_the_place_of_the_lost_postponed_message(world: dict) -> None:
    # Given two old pending payouts whose messages fell silent: one was postponed before (the
    # payout holds the ticket its last message carried), the other never was
    now = datetime.now(UTC)
    postponed, never = put_payout(world["resources"], "pending", age=OLD), put_payout(world["resources"], "pending", age=OLD)
    for item in (postponed, never):
        set_attribute(world["resources"], keys.payout(item["id"]), "received_at", clock.text(now - timedelta(minutes=10)))
    set_attribute(world["resources"], keys.payout(postponed["id"]), "ticket", "t-3")
    # When reconciliation runs
    reconcile(world)
    # Then each message holds the payout's ticket as it stands (none for the other), which is what
    # the worker accepts as the live message
    bodies = {body["payout_id"]: body for body in (json.loads(m["Body"]) for m in drain(world["resources"], "PayoutsQueue"))}
    assert bodies[postponed["id"]] == {"payout_id": postponed["id"], "ticket": "t-3"}
    assert bodies[never["id"]] == {"payout_id": never["id"]}


def test_a_pending_payout_never_received_waits_out_a_backlog_unless_its_hand_off_failed(world: dict) -> None:
    # Given two pending payouts five minutes old (past the grace period, within the stuck
    # threshold), whose messages no worker received; the API noted that one's send failed
    waiting = put_payout(world["resources"], "pending", age=timedelta(minutes=5))
    lost = put_payout(world["resources"], "pending", age=timedelta(minutes=5))
    set_attribute(world["resources"], keys.outbox(lost["id"], lost["created_at"]), "hand_off_failed", True)
    # When reconciliation runs
    result = reconcile(world)
    sent = sent_payout_ids(world)
    # Then the one never handed off is re-enqueued and the other is left to its message
    assert lost["id"] in sent
    assert waiting["id"] not in sent
    assert result["message_not_received_yet"] >= 1


def test_a_stuck_payout_takes_the_providers_final_status_once(world: dict, provider: Recorder) -> None:
    item = put_payout(world["resources"], "submitted", age=OLD)
    provider.answers[item["id"]] = (200, {"id": item["id"], "status": "paid"})

    reconcile(world)
    again = reconcile(world)

    stored = payout(world, item["id"])
    assert (stored["status"], stored["version"]) == ("paid", 2)
    assert marker(world, item) is None
    assert get_item(world["resources"], keys.webhook_event(f"reconcile:{item['id']}:paid"))["source"] == "reconciliation"
    assert again.get("provider_applied", 0) == 0


def test_a_provider_failure_carries_its_reason(world: dict, provider: Recorder) -> None:
    item = put_payout(world["resources"], "processing", age=OLD)
    provider.answers[item["id"]] = (200, {"id": item["id"], "status": "failed", "failure_reason": "beneficiary bank rejected"})

    reconcile(world)

    stored = payout(world, item["id"])
    assert (stored["status"], stored["failure_reason"]) == (
        "failed",
        "provider_failed: The payment provider reported that the payout failed.",
    )


def test_the_provider_is_asked_by_the_payouts_provider_reference(world: dict, provider: Recorder) -> None:
    item = put_payout(world["resources"], "submitted", age=OLD)
    world["resources"].client("dynamodb").update_item(
        TableName=world["resources"].ref("Table"),
        Key={"pk": {"S": f"PAYOUT#{item['id']}"}, "sk": {"S": "PAYOUT"}},
        UpdateExpression="SET provider_reference = :r",
        ExpressionAttributeValues={":r": {"S": "prv_ref_77"}},
    )
    provider.answers["prv_ref_77"] = (200, {"id": "prv_ref_77", "status": "processing"})

    reconcile(world)

    assert payout(world, item["id"])["status"] == "processing"
    assert marker(world, item) is not None


def test_a_recently_updated_payout_is_left_to_its_webhooks(world: dict, provider: Recorder) -> None:
    item = put_payout(world["resources"], "submitted", age=OLD)
    world["resources"].client("dynamodb").update_item(
        TableName=world["resources"].ref("Table"),
        Key={"pk": {"S": f"PAYOUT#{item['id']}"}, "sk": {"S": "PAYOUT"}},
        UpdateExpression="SET updated_at = :now",
        ExpressionAttributeValues={":now": {"S": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}},
    )
    provider.answers[item["id"]] = (200, {"id": item["id"], "status": "paid"})

    reconcile(world)

    assert not [r for r in provider.requests if r["path"].endswith(item["id"])]
    assert payout(world, item["id"])["status"] == "submitted"


def test_a_provider_error_or_unknown_payout_changes_nothing_and_others_are_still_repaired(world: dict, provider: Recorder) -> None:
    erroring = put_payout(world["resources"], "submitted", age=OLD)
    unknown = put_payout(world["resources"], "submitted", age=OLD)
    healthy = put_payout(world["resources"], "submitted", age=OLD)
    provider.answers[erroring["id"]] = (503, {"title": "down"})
    provider.answers[healthy["id"]] = (200, {"id": healthy["id"], "status": "paid"})

    result = reconcile(world)

    assert payout(world, erroring["id"])["status"] == "submitted"
    assert payout(world, unknown["id"])["status"] == "submitted"
    assert payout(world, healthy["id"])["status"] == "paid"
    assert result["provider_unavailable"] >= 1


def test_the_marker_of_a_finished_payout_is_deleted(world: dict) -> None:
    item = put_payout(world["resources"], "paid", age=OLD)

    reconcile(world)

    assert marker(world, item) is None
    assert payout(world, item["id"])["status"] == "paid"


def test_a_webhook_arriving_after_the_reconciliation_applied_its_status_changes_nothing(world: dict, provider: Recorder) -> None:
    # Given a stuck payout that reconciliation has already brought to paid
    item = put_payout(world["resources"], "submitted", age=OLD)
    provider.answers[item["id"]] = (200, {"id": item["id"], "status": "paid"})
    reconcile(world)
    late = event_body("payout.paid", item["id"])

    # When the provider's own webhook finally arrives
    failures = world["worker"](sqs_event([late]))["batchItemFailures"]

    # Then it is recorded as ignored and the payout was changed once
    assert failures == []
    assert payout(world, item["id"])["version"] == 2
    assert get_item(world["resources"], keys.webhook_event(json.loads(late)["id"]))["outcome"] == "ignored"


def test_an_invocation_with_no_time_to_spare_defers_everything_to_the_next_run(world: dict, provider: Recorder) -> None:
    # Given two stuck payouts and a pending one
    stuck = [put_payout(world["resources"], "submitted", age=OLD) for _ in range(2)]
    pending = put_payout(world["resources"], "pending", age=OLD)
    for item in stuck:
        provider.answers[item["id"]] = (200, {"id": item["id"], "status": "paid"})
    drain(world["resources"], "PayoutsQueue")
    asked = len(provider.requests)
    event = load_event("scheduled_sync/scheduled.json", time=datetime.now(UTC).isoformat())
    # When the schedule's invocation starts with no more time left than it keeps in reserve
    result = world["scheduled"](event, remaining_ms=int(RESERVE_SECONDS * 1000))
    # Then it read no shard, asked the provider nothing, changed nothing, and returned normally
    assert result["reconcile_payouts"] == {"shards_deferred": keys.OUTBOX_SHARDS}
    assert len(provider.requests) == asked
    assert all(payout(world, item["id"])["status"] == "submitted" for item in stuck)
    assert drain(world["resources"], "PayoutsQueue") == []
    # And the next run, with its whole timeout, repairs them all
    world["scheduled"](load_event("scheduled_sync/scheduled.json", time=datetime.now(UTC).isoformat()))
    assert all(payout(world, item["id"])["status"] == "paid" for item in stuck)
    assert pending["id"] in [json.loads(m["Body"])["payout_id"] for m in drain(world["resources"], "PayoutsQueue")]


def test_a_backlog_longer_than_the_deadline_is_looked_up_oldest_first_until_it(
    world: dict, provider: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given five stuck payouts older than any other, a provider that takes 10 s to answer, and 25 s
    stuck = [put_payout(world["resources"], "submitted", age=timedelta(days=30, minutes=5 - n)) for n in range(5)]
    for item in stuck:
        provider.answers[item["id"]] = (200, {"id": item["id"], "status": "paid"})
    clock = [0.0]

    class SlowProvider(PaymentProvider):
        def status(self, payout: Any, timeout: float | None = None) -> dict[str, Any] | None:
            clock[0] += 10
            return super().status(payout, timeout)

    settings = world["resources"].settings("ScheduledSyncFunction", ScheduledJobsSettings)
    monkeypatch.setattr(reconciliation, "PROVIDER_CONCURRENCY", 1)
    # When reconciliation runs
    with world["scheduled"].environment():
        result = reconciliation.reconcile_payouts(datetime.now(UTC), Deadline(25, clock=lambda: clock[0]), settings, SlowProvider(settings))
    # Then the three oldest were repaired before the deadline and the other two left for the next run
    assert [payout(world, item["id"])["status"] for item in stuck] == ["paid"] * 3 + ["submitted"] * 2
    assert (result["provider_applied"], clock[0]) == (3, 30)
    # (with any payout other tests here left stuck, which is younger than these five)
    assert result["deferred_to_next_run"] >= 2


def test_a_repair_to_paid_or_failed_settles_or_releases_the_reserve_once(world: dict, provider: Recorder, monkeypatch) -> None:
    # Given two payouts created (and their amounts reserved) through the API, both processing and then silent
    resources = world["resources"]
    fund(resources, "rita", 100_000)
    api = InProcess(resources, "PayoutsApiFunction")
    auth = {"authorization": f"Bearer {mint_token(resources, 'rita')}", "idempotency-key": ""}
    created = {}
    for outcome, amount in (("paid", 30_000), ("failed", 20_000)):
        headers = {**auth, "idempotency-key": f"repair-{outcome}"}
        status, _, body = call(api, http_event("POST", "/payouts", body={**VALID_BODY, "amount": amount}, headers=headers))
        assert status == 201, body
        created[outcome] = body
        world["worker"](sqs_event([event_body("payout.processing", body["id"])]))
        provider.answers[f"prv_{body['id']}"] = (200, {"id": f"prv_{body['id']}", "status": outcome, "failure_reason": "closed"})
    # When the reconciliation, for which they are stuck at once, runs twice
    for threshold in ("RECONCILE_GRACE_SECONDS", "RECONCILE_STUCK_SECONDS"):
        monkeypatch.setitem(resources.functions["ScheduledSyncFunction"].environment, threshold, "0")
    scheduled = InProcess(resources, "ScheduledSyncFunction")
    for _ in range(2):
        drain(resources, "PayoutsQueue")
        scheduled(load_event("scheduled_sync/scheduled.json", time=datetime.now(UTC).isoformat()))
    # Then the paid one's amount has left reserved, the failed one's is available again, each once
    assert {outcome: payout(world, body["id"])["status"] for outcome, body in created.items()} == {"paid": "paid", "failed": "failed"}
    status, _, balances = call(api, http_event("GET", "/balances", headers={"authorization": auth["authorization"]}))
    assert [(item["available"], item["reserved"]) for item in balances["items"]] == [(70_000, 0)]
    path = "/balances/ZAR/ledger"
    status, _, page = call(
        api,
        http_event(
            "GET",
            path,
            headers={"authorization": auth["authorization"]},
            route="/balances/{currency}/ledger",
            path_parameters={"currency": "ZAR"},
        ),
    )
    assert Counter(entry["type"] for entry in page["items"]) == {"funding": 1, "reserve": 2, "settle": 1, "release": 1}
