"""The payout worker against the sandbox provider, in-process on moto, driven through the real
payouts queue by devstack's SQS poller (receive, invoke, delete what succeeded)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from devstack.events import SqsPoller
from tests.payouts_support import VALID_BODY, call, funded_token, http_event, in_process_transport, item_keys, sqs_event
from tests.support import LambdaContext, Resources, function_environment_of, load_function

# Long enough for the in-process sandbox to answer on a loaded 2-core machine (its accept does
# several table and queue calls: 0.25 s timed out under a parallel CI run), short enough that a
# "timeout" fault (the sandbox sleeping half a second past it) keeps the suite quick.
PROVIDER_TIMEOUT = 1.0


@dataclass
class World:
    resources: Resources
    api: Any
    worker: Any
    worker_module: Any
    sandbox: Any
    bearer: str
    calls: list[httpx.Request]

    def create(self, key: str, **changes: Any) -> dict[str, Any]:
        body = {**VALID_BODY, **changes}
        status, _, payout = call(
            self.api, http_event("POST", "/payouts", body=body, headers={"authorization": f"Bearer {self.bearer}", "idempotency-key": key})
        )
        assert status == 201, payout
        return payout

    def payout(self, payout_id: str) -> dict[str, Any]:
        from payrail.db import payouts

        payout = payouts.get(payout_id)
        assert payout is not None
        return payout.model_dump(mode="json")

    def faults(self, **rates: float) -> None:
        status, _, _ = call(self.sandbox, http_event("PUT", "/sandbox/payments/faults", body=rates, route="/sandbox/{proxy+}"))
        assert status == 200

    def lower_redrive(self, receives: int) -> None:
        """The payouts queue sends a message to its DLQ after ``receives`` receives (10 in the template)."""
        sqs, queue = self.resources.client("sqs"), self.resources.ref("PayoutsQueue")
        policy = json.loads(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"])
        sqs.set_queue_attributes(QueueUrl=queue, Attributes={"RedrivePolicy": json.dumps({**policy, "maxReceiveCount": receives})})

    def provider_payouts(self) -> list[dict[str, Any]]:
        items, cursor = [], None
        while True:
            query = {"limit": "50", **({"cursor": cursor} if cursor else {})}
            status, _, page = call(self.sandbox, http_event("GET", "/sandbox/payments/v1/payouts", query=query, route="/sandbox/{proxy+}"))
            assert status == 200
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return items

    def poller(self) -> SqsPoller:
        return SqsPoller(
            self.resources.client("sqs"),
            "PayoutWorkerFunction",
            self.resources.ref("PayoutsQueue"),
            f"arn:aws:sqs:us-east-1:123456789012:{self.resources.ref('PayoutsQueue').rsplit('/', 1)[-1]}",
            {"BatchSize": 10, "FunctionResponseTypes": ["ReportBatchItemFailures"]},
            lambda _, event: self.worker(event, LambdaContext()),
            lambda _: None,
            threading.Event(),
        )


@pytest.fixture
def world(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The API, the worker and the sandbox in one process on one fresh table; the worker's
    httpx client reaches the sandbox in-process, with a short provider timeout."""
    resources.functions["PayoutWorkerFunction"].environment.update(
        PROVIDER_TIMEOUT_SECONDS=str(PROVIDER_TIMEOUT),
        SANDBOX_PAYMENTS_CALLER_TIMEOUT_SECONDS=str(PROVIDER_TIMEOUT),
        BREAKER_COOLDOWN_SECONDS="1",
        BREAKER_MINIMUM_CALLS="5",
        BACKOFF_BASE_SECONDS="0.5",
        BACKOFF_CAP_SECONDS="2",
    )
    bearer = funded_token(resources, "alice")
    with function_environment_of(resources, "PayoutWorkerFunction", "PayoutsApiFunction", "SandboxFunction"):
        api = load_function(resources, "PayoutsApiFunction").lambda_handler
        sandbox = load_function(resources, "SandboxFunction").lambda_handler
        worker_module = load_function(resources, "PayoutWorkerFunction")
        calls: list[httpx.Request] = []
        transport = in_process_transport(sandbox)

        def counted(request: httpx.Request) -> httpx.Response:
            calls.append(request)
            return transport.handle_request(request)

        from payrail.payouts import provider

        monkeypatch.setattr(provider, "TRANSPORT", httpx.MockTransport(counted))
        monkeypatch.setenv("PAYOUT_RATE_LIMIT_PER_MINUTE", "1000")
        yield World(resources, api, worker_module.lambda_handler, worker_module, sandbox, bearer, calls)


def drain(world: World, payout_ids: list[str], deadline_seconds: float = 60) -> None:
    """Poll the queue until every payout left ``pending`` and the queue is empty, or fail."""
    poller = world.poller()
    sqs = world.resources.client("sqs")
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        poller.poll_once()
        attributes = sqs.get_queue_attributes(
            QueueUrl=world.resources.ref("PayoutsQueue"),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        in_flight = int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])
        if in_flight == 0 and all(world.payout(p)["status"] != "pending" for p in payout_ids):
            return
    raise AssertionError("payouts were not all processed in time")


def test_a_flaky_provider_with_duplicate_deliveries_pays_each_payout_exactly_once(world: World) -> None:
    # Given a provider failing 20% of requests with 5xx, 10% with 429 and 5% with timeouts
    world.faults(error_rate=0.2, rate_limit_rate=0.1, timeout_rate=0.05)
    # And 16 payouts (one with a closed account), each delivered twice more to the worker
    payouts = [world.create(f"flaky-{i}") for i in range(15)]
    payouts.append(world.create("flaky-closed", beneficiary={**VALID_BODY["beneficiary"], "account_number": "000012345"}))
    ids = [p["id"] for p in payouts]
    from payrail import queues

    for payout_id in ids * 2:
        queues.send(world.resources.ref("PayoutsQueue"), {"payout_id": payout_id})
    # When the worker drains the queue
    drain(world, ids)
    # Then every payout is submitted with the provider's reference, except the closed account's, failed
    final = {p: world.payout(p) for p in ids}
    assert {final[p]["status"] for p in ids[:-1]} == {"submitted"}
    assert final[ids[-1]]["status"] == "failed"
    assert "account" in final[ids[-1]]["failure_reason"]
    # And the provider received exactly one payout per payout id (none for the closed account)
    received = world.provider_payouts()
    assert sorted(r["idempotency_key"] for r in received) == sorted(ids[:-1])
    assert {final[p]["provider_reference"] for p in ids[:-1]} == {r["id"] for r in received}
    # And the faults really were drawn: the provider was called more often than there are payouts
    assert len(world.calls) > len(ids)
    # And nothing went to the dead-letter queue
    dlq = world.resources.client("sqs").receive_message(QueueUrl=world.resources.ref("PayoutsDLQ"))
    assert not dlq.get("Messages")


def test_a_timeout_after_acceptance_is_absorbed_by_the_idempotency_key(world: World) -> None:
    # Given a provider whose every request times out after accepting the payout
    world.faults(timeout_rate=1.0, timeout_after_accept_share=1.0)
    payout = world.create("timeout")
    for _ in range(3):
        assert world.worker(sqs_event([payout["id"]]), LambdaContext())["batchItemFailures"]
    assert world.payout(payout["id"])["status"] == "pending"
    assert [r["idempotency_key"] for r in world.provider_payouts()] == [payout["id"]]
    # When the provider recovers and the message is delivered again
    world.faults()
    result = world.worker(sqs_event([payout["id"]]), LambdaContext())
    # Then the payout is submitted with the payout the provider accepted during the first timeout, and no other
    assert result["batchItemFailures"] == []
    received = world.provider_payouts()
    assert [r["idempotency_key"] for r in received] == [payout["id"]]
    assert world.payout(payout["id"])["status"] == "submitted"
    assert world.payout(payout["id"])["provider_reference"] == received[0]["id"]


def test_a_payout_no_longer_pending_is_skipped_without_calling_the_provider(world: World) -> None:
    # Given a payout already submitted
    payout = world.create("done")
    assert world.worker(sqs_event([payout["id"]]), LambdaContext())["batchItemFailures"] == []
    calls = len(world.calls)
    version = world.payout(payout["id"])["version"]
    # When it is delivered again
    result = world.worker(sqs_event([payout["id"]]), LambdaContext())
    # Then the record succeeds, the provider is not called, and the payout is unchanged
    assert result["batchItemFailures"] == []
    assert len(world.calls) == calls
    assert world.payout(payout["id"])["version"] == version == 2


def test_a_permanent_rejection_fails_the_payout_and_clears_its_outbox_marker(world: World) -> None:
    # Given a payout to a closed account
    payout = world.create("closed", beneficiary={**VALID_BODY["beneficiary"], "account_number": "00001111"})
    assert any(k.startswith("OUTBOX#") for k in item_keys(world.resources))
    # When the worker submits it
    result = world.worker(sqs_event([payout["id"]]), LambdaContext())
    # Then the record succeeds (no retry), the payout is failed with a reason, and it is no longer marked unfinished
    assert result["batchItemFailures"] == []
    stored = world.payout(payout["id"])
    assert stored["status"] == "failed"
    assert stored["failure_reason"] == "beneficiary_account_closed: The beneficiary's account is closed."
    assert not any(k.startswith("OUTBOX#") for k in item_keys(world.resources))


def test_only_the_failed_record_of_a_batch_is_retried_after_a_backoff(world: World) -> None:
    # Given two payouts on the queue, and a provider that fails only the first request
    good, bad = world.create("good"), world.create("bad")
    sqs = world.resources.client("sqs")
    queue = world.resources.ref("PayoutsQueue")
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"])[
        "Messages"
    ]
    by_id = {json.loads(m["Body"])["payout_id"]: m for m in messages}
    world.faults(error_rate=1.0)
    event = sqs_event([bad["id"]], receipts=[by_id[bad["id"]]["ReceiptHandle"]])
    # When the bad one is processed while the provider fails, then the good one after it recovers
    failed = world.worker(event, LambdaContext())
    world.faults()
    ok = world.worker(sqs_event([good["id"]]), LambdaContext())
    # Then only the bad record failed, and its message is hidden for the backoff (at least 1 s), then back
    assert [f["itemIdentifier"] for f in failed["batchItemFailures"]] == [event["Records"][0]["messageId"]]
    assert ok["batchItemFailures"] == []
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=by_id[good["id"]]["ReceiptHandle"], VisibilityTimeout=0)
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=by_id[good["id"]]["ReceiptHandle"])
    assert not sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages")
    again = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5).get("Messages", [])
    assert [json.loads(m["Body"])["payout_id"] for m in again] == [bad["id"]]


class RunningOut(LambdaContext):
    """An invocation whose remaining time, read once per record, is ``left_ms`` in turn."""

    def __init__(self, *left_ms: int) -> None:
        super().__init__()
        self.left_ms = list(left_ms)

    def get_remaining_time_in_millis(self) -> int:
        return self.left_ms.pop(0)


def test_records_reached_without_the_time_to_submit_them_come_back_at_once_untouched(world: World) -> None:
    # Given three payouts received from the queue in one batch
    payouts = [world.create(f"late-{i}") for i in range(3)]
    sqs = world.resources.client("sqs")
    queue = world.resources.ref("PayoutsQueue")
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=180)["Messages"]
    by_id = {json.loads(m["Body"])["payout_id"]: m["ReceiptHandle"] for m in messages}
    ids = [p["id"] for p in payouts]
    event = sqs_event(ids, receipts=[by_id[i] for i in ids])
    # When the invocation has the time for the first only (its provider timeout and margins)
    needed_ms = int(world.worker_module.submitter().seconds_needed * 1000)
    result = world.worker(event, RunningOut(needed_ms + 100, needed_ms - 1, 100))
    # Then the first is submitted, and the other two fail without the provider being called
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == [r["messageId"] for r in event["Records"][1:]]
    assert len(world.calls) == 1
    assert [world.payout(i)["status"] for i in ids] == ["submitted", "pending", "pending"]
    # And their messages are offered again now, not after the 180 s visibility timeout
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=by_id[ids[0]])
    again = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert sorted(json.loads(m["Body"])["payout_id"] for m in again) == sorted(ids[1:])


def test_every_receive_of_a_payouts_message_is_noted_on_the_payout_and_not_shown_to_its_owner(world: World) -> None:
    # Given a provider that fails, so the payout stays pending and its message comes back
    from payrail.db import keys, serialize

    world.faults(error_rate=1.0)
    payout = world.create("noted")
    stored = {"TableName": world.resources.ref("Table"), "Key": serialize(keys.payout(payout["id"]))}
    assert "received_at" not in world.resources.client("dynamodb").get_item(**stored)["Item"]
    # When the worker receives its message
    assert world.worker(sqs_event([payout["id"]]), LambdaContext())["batchItemFailures"]
    # Then the payout notes when (reconciliation leaves a payout whose message is in flight alone)
    item = world.resources.client("dynamodb").get_item(**stored)["Item"]
    assert item["status"] == {"S": "pending"}
    assert item["received_at"]["S"] >= payout["created_at"]
    status, _, shown = call(
        world.api,
        http_event("GET", f"/payouts/{payout['id']}", headers={"authorization": f"Bearer {world.bearer}"}, route="/payouts/{payout_id}"),
    )
    assert status == 200
    assert "received_at" not in shown


def test_the_breaker_opens_once_most_calls_fail_then_probes_once_and_closes(world: World) -> None:
    # Given a provider that fails every request, and a breaker counting from 5 calls
    world.faults(error_rate=1.0)
    payout = world.create("breaker")
    for _ in range(5):
        assert world.worker(sqs_event([payout["id"]]), LambdaContext())["batchItemFailures"]
    assert len(world.calls) == 5
    breaker = world.worker_module.submitter().breaker
    assert breaker.state().state == "open"
    # When three more copies of its message are delivered while it is open
    for _ in range(3):
        assert world.worker(sqs_event([payout["id"]]), LambdaContext())["batchItemFailures"] == []
    # Then the provider is not called, and the first copy is postponed: sent again as a new message
    # (so the wait spends none of the queue's receives towards the DLQ) with the ticket the payout
    # took for it. The other two copies are dropped, not each sent again.
    assert len(world.calls) == 5
    ticket = world.payout(payout["id"])["ticket"]
    assert ticket
    queued = queued_bodies(world, wait_seconds=5, count=4)  # and the message POST /payouts sent
    assert [body for body in queued if "postponed" in body] == [{"payout_id": payout["id"], "postponed": 1, "ticket": ticket}]
    # When the cool-down has passed and the provider has recovered, and the postponed message comes
    time.sleep(1.1)
    world.faults()
    result = world.worker(message_event({"payout_id": payout["id"], "postponed": 1, "ticket": ticket}), LambdaContext())
    # Then one probe goes through, succeeds, and the breaker closes
    assert result["batchItemFailures"] == []
    assert len(world.calls) == 6
    assert breaker.state().state == "closed"
    assert world.payout(payout["id"])["status"] == "submitted"


def message_event(body: dict[str, Any]) -> dict[str, Any]:
    """A payouts-queue delivery of one message with ``body``."""
    event = sqs_event([body["payout_id"]])
    event["Records"][0]["body"] = json.dumps(body)
    return event


def test_of_many_copies_of_a_message_postponed_at_once_exactly_one_sends_the_next(world: World) -> None:
    # Given an open breaker and a pending payout
    from payrail.clock import Deadline
    from payrail.errors import Postpone

    breaker = world.worker_module.submitter().breaker
    for _ in range(5):
        breaker.record_failure(breaker.before_call())
    payout = world.create("copies")
    message = world.worker_module.PayoutMessage(payout_id=payout["id"])
    # When 8 workers hold a copy of its message (duplicate deliveries) and are held back at once
    outcomes: list[Any] = []
    barrier = threading.Barrier(8)

    def hold_back() -> None:
        barrier.wait()
        try:
            outcomes.append(world.worker_module.submitter().submit(message, Deadline(30)))
        except Postpone as postponed:
            outcomes.append(postponed.body)

    threads = [threading.Thread(target=hold_back) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly one copy is to be sent again, holding the ticket the payout took; the others are dropped
    [body] = [outcome for outcome in outcomes if isinstance(outcome, dict)]
    assert body == {"payout_id": payout["id"], "postponed": 1, "ticket": world.payout(payout["id"])["ticket"]}
    assert sorted(o for o in outcomes if isinstance(o, str)) == ["superseded"] * 7
    # And after the cool-down, a copy left over is still dropped, without calling the provider or
    # spending the breaker's probe, while the live message submits the payout
    time.sleep(1.1)  # the cool-down: the breaker lets one probe through
    assert world.worker_module.submitter().submit(message, Deadline(30)) == "superseded"
    assert world.calls == []
    assert world.worker(message_event(body), LambdaContext())["batchItemFailures"] == []
    assert len(world.calls) == 1
    assert world.payout(payout["id"])["status"] == "submitted"


def queued_bodies(world: World, wait_seconds: float, count: int) -> list[dict[str, Any]]:
    """Receive and delete up to ``count`` messages from the payouts queue within ``wait_seconds``."""
    sqs, queue = world.resources.client("sqs"), world.resources.ref("PayoutsQueue")
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait_seconds
    while len(found) < count and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return found


def test_a_rate_limiting_provider_postpones_payouts_without_dead_lettering_them(world: World) -> None:
    # Given the payouts queue's redrive lowered to 2 receives, and a provider answering 429 to everything
    sqs, dlq = world.resources.client("sqs"), world.resources.ref("PayoutsDLQ")
    world.lower_redrive(2)
    world.faults(rate_limit_rate=1.0)
    payout = world.create("patient")
    # When the worker meets the 429 five times, more than the redrive allows receives
    poller = world.poller()
    deadline = time.monotonic() + 40
    while len(world.calls) < 5 and time.monotonic() < deadline:
        poller.poll_once()
    assert len(world.calls) >= 5
    # Then nothing was dead-lettered: each wait was a new message, its count carried in the body
    assert not sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages")
    # And once the provider recovers, the payout is submitted once
    world.faults()
    drain(world, [payout["id"]], deadline_seconds=30)
    assert world.payout(payout["id"])["status"] == "submitted"
    assert len(world.provider_payouts()) == 1
    assert not sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages")


def test_postponements_are_bounded_then_the_wait_counts_towards_the_dlq(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from payrail.payouts import submission

    monkeypatch.setattr(submission, "MAX_POSTPONEMENTS", 2)
    world.faults(rate_limit_rate=1.0)
    payout = world.create("bounded")

    # A message postponed fewer times than the bound is sent again with its count one higher
    assert world.worker(message_event({"payout_id": payout["id"], "postponed": 1}), LambdaContext())["batchItemFailures"] == []
    [again] = [body for body in queued_bodies(world, wait_seconds=5, count=3) if body.get("postponed")]
    assert again == {"payout_id": payout["id"], "postponed": 2, "ticket": world.payout(payout["id"])["ticket"]}
    # One postponed as often as the bound allows fails its record instead (a receive spent)
    assert len(world.worker(message_event(again), LambdaContext())["batchItemFailures"]) == 1


def test_after_the_cool_down_exactly_one_of_many_workers_gets_the_probe(world: World) -> None:
    # Given an open breaker whose cool-down has passed
    from payrail.db.circuit import CircuitOpen

    circuit = world.worker_module.submitter().breaker
    for _ in range(5):
        circuit.record_failure(circuit.before_call())
    time.sleep(1.1)
    # When 8 workers ask for a permit at once
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        try:
            outcomes.append("probe" if circuit.before_call().probe else "closed")
        except CircuitOpen:
            outcomes.append("refused")

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly one gets the probe, the others are refused
    assert sorted(outcomes) == ["probe"] + ["refused"] * 7


def test_a_payout_that_keeps_failing_is_dead_lettered_and_stays_marked_for_reconciliation(world: World) -> None:
    # Given a provider that always fails, and the payouts queue's redrive lowered to 2 receives for speed
    sqs, dlq = world.resources.client("sqs"), world.resources.ref("PayoutsDLQ")
    world.lower_redrive(2)
    world.faults(error_rate=1.0)
    payout = world.create("doomed")
    # When the worker keeps receiving it (each failure hides it for its backoff)
    poller = world.poller()
    deadline = time.monotonic() + 20
    dead: list[dict[str, Any]] = []
    while not dead and time.monotonic() < deadline:
        poller.poll_once()
        dead = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages", [])
    # Then the message is in the dead-letter queue, and the payout is still pending with its
    # outbox marker, which is how the scheduled reconciliation finds it again
    assert [json.loads(m["Body"])["payout_id"] for m in dead] == [payout["id"]]
    assert world.payout(payout["id"])["status"] == "pending"
    assert any(k.startswith("OUTBOX#") for k in item_keys(world.resources))


# Issue 19 item 7: what the provider's refusals mean. Only its documented business rejection (a
# 422 with a known `code`) is final; authentication, configuration and unknown errors are an
# outage of ours or theirs, which must not fail payouts for good.
PROVIDER_TEXT = "Invalid API key sk_live_51H... provided; see https://provider.example/docs"


def refusing(status: int, body: dict[str, Any]) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body))


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"error": PROVIDER_TEXT}),  # a revoked API key
        (403, {"detail": PROVIDER_TEXT}),  # a key without the payouts permission
        (404, {"title": "Not Found"}),  # a wrong base URL
        (500, {"detail": PROVIDER_TEXT}),
        (400, {"detail": PROVIDER_TEXT}),  # a request the provider cannot read: our bug, or its change
        (418, {"detail": PROVIDER_TEXT}),  # a status nobody documented
        (422, {"detail": PROVIDER_TEXT}),  # a 422 without a code
        (422, {"detail": PROVIDER_TEXT, "code": "idempotency_key_reused"}),  # a code that is not a rejection
    ],
)
def test_a_provider_refusal_that_is_not_a_documented_rejection_is_retried_and_counts_against_the_breaker(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], status: int, body: dict[str, Any]
) -> None:
    # Given a provider answering every request with this refusal
    from payrail.payouts import provider

    monkeypatch.setattr(provider, "TRANSPORT", refusing(status, body))
    payout = world.create(f"refused-{status}-{len(body)}")
    # When the worker submits the payout
    result = world.worker(sqs_event([payout["id"]]), LambdaContext())
    # Then the record fails, so SQS delivers it again after a backoff
    assert len(result["batchItemFailures"]) == 1
    # And the payout is still pending, with no failure reason and its outbox marker kept
    stored = world.payout(payout["id"])
    assert stored["status"] == "pending"
    assert stored.get("failure_reason") is None
    assert any(k.startswith("OUTBOX#") for k in item_keys(world.resources))
    # And the breaker counted one failure (its sliding window weighs the previous fixed window by
    # the share it still covers, so a window boundary passing before this read shows it as just under 1)
    assert world.worker_module.submitter().breaker.state().failures == pytest.approx(1, abs=0.05)
    # And a 4xx outage raises the metric the ProviderRefusingCalls alarm watches (a 5xx is an
    # ordinary server error, retried as before)
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    refused = [m for m in emitted if "ProviderCallsRefused" in m]
    assert len(refused) == (0 if status >= 500 else 1)


def test_a_documented_rejection_fails_the_payout_with_a_stable_code_and_the_projects_words(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a provider that rejects the payout with its documented code, in its own words
    from payrail.payouts import provider

    monkeypatch.setattr(provider, "TRANSPORT", refusing(422, {"code": "account_closed", "detail": PROVIDER_TEXT}))
    payout = world.create("rejected")
    # When the worker submits it
    result = world.worker(sqs_event([payout["id"]]), LambdaContext())
    # Then it is final: failed with the project's code and message, none of the provider's text
    assert result["batchItemFailures"] == []
    stored = world.payout(payout["id"])
    assert (stored["status"], stored["failure_reason"]) == ("failed", "beneficiary_account_closed: The beneficiary's account is closed.")
    # And a business rejection proves the provider is up: the breaker counts no failure
    assert world.worker_module.submitter().breaker.state().failures == 0
