"""The merchant webhooks under faults: a receiver that fails and stalls, and what must still hold.

Every client registers an endpoint on one loopback receiver (a path of its own) before it creates
a payout. The receiver answers 500 to about 30% of attempts and stalls past the delivery timeout on
about 10% (the stack runs with ``WebhookDeliveryTimeoutSeconds`` short, so the stall is a real
timed-out attempt, and with ``WebhookRetrySchedule`` compressed, so the retries end within the
run); the rest get a 200. Its choices come from a seeded random source. It verifies each request's
signature with the endpoint's secret (the official standardwebhooks library) as it arrives.

At the end, against the table's own history (its stream, which moto keeps from the first write):

* every state change of every payout (its insert, ``payout.created``, and each status it moved to)
  has its event delivered (a 2xx the receiver gave in time, and a ``delivered`` attempt in the
  endpoint's deliveries list) to its owner's endpoint;
* none emitted twice: each state change has one event id, each event id one body, and no event
  is about a change the table never made;
* no event reached another client's endpoint, and every signature verified;
* the deliveries list agrees with what the receiver saw (no attempt recorded that the receiver
  did not get, no status code it did not answer, each stall recorded as a failed attempt);
* the fan-out's dead-letter queue is empty, and the delivery queue's holds nothing but messages
  whose pair was delivered anyway (the reliability stack's 6 s visibility, on a busy machine, can
  see one invocation outlive it five times).
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from standardwebhooks import Webhook, WebhookVerificationError

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "layers/common") not in sys.path:
    sys.path.insert(0, str(ROOT / "layers/common"))


from devstack.running import RunningStack  # noqa: E402
from scenarios import payouts  # noqa: E402
from scenarios.receiver import Recorder  # noqa: E402

# Compressed for the run: sixteen tries about a second or three apart. A try fails 40% of the
# time here, so sixteen failures in a row (the pair abandoned) is about 4 in 10^7.
RETRY_SCHEDULE = "0,1,1,2,2,2,3,3,3,3,3,3,3,3,3,3"
# Short, so a stalled attempt's invocation (the timeout and its table writes) ends well within the
# 6 s the reliability stack gives a message before receiving it again.
DELIVERY_TIMEOUT_SECONDS = 2
FAILURE_SHARE = 0.3
SLOW_SHARE = 0.1
STACK_PARAMETERS = f"WebhookRetrySchedule={RETRY_SCHEDULE} WebhookDeliveryTimeoutSeconds={DELIVERY_TIMEOUT_SECONDS}"
ENDPOINT_DLQS = ("WebhookDeliveriesDLQ", "WebhookFanOutDLQ")


class FlakyReceiver(Recorder):
    """The loopback receiver: 500 on ``failure_share`` of attempts, a stall past ``stall_seconds``
    on ``slow_share`` (then a 200, which the sender no longer waits for), otherwise 200. Each
    request is noted with what it got and whether its signature verified with its path's secret."""

    def __init__(self, failure_share: float, slow_share: float, stall_seconds: float, seed: int = 17) -> None:
        super().__init__()
        self.failure_share = failure_share
        self.slow_share = slow_share
        self.stall_seconds = stall_seconds
        self.secrets: dict[str, str] = {}  # path → the endpoint's signing secret
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def answer_post(self, request: dict[str, Any]) -> int:
        secret = self.secrets.get(request["path"])
        try:
            if secret is None:
                raise WebhookVerificationError("no endpoint registered at this path")
            Webhook(secret).verify(request["body"], request["headers"], json_parse=False)
            request["verified"] = True
        except WebhookVerificationError as rejected:
            request["verified"] = False
            request["rejected"] = str(rejected)
            request["answered"] = 400
            return 400
        with self._lock:
            draw = self._random.random()
        request["slow"] = self.failure_share <= draw < self.failure_share + self.slow_share
        request["answered"] = 500 if draw < self.failure_share else 200
        if request["slow"]:
            time.sleep(self.stall_seconds)
        return int(request["answered"])


@dataclass
class Endpoint:
    worker: int
    id: str
    path: str
    auth: dict[str, str]


@dataclass
class Change:
    """One state change of a payout as the table's stream shows it."""

    payout_id: str
    type: str
    version: int


@dataclass
class Webhooks:
    receiver: FlakyReceiver
    endpoints: list[Endpoint] = field(default_factory=list)

    @classmethod
    def start(cls, faults: bool) -> Webhooks:
        return cls(FlakyReceiver(FAILURE_SHARE if faults else 0, SLOW_SHARE if faults else 0, DELIVERY_TIMEOUT_SECONDS + 1))

    def register(self, api: httpx.Client, tokens: list[str]) -> None:
        """One endpoint per client, each at its own path of the receiver, every event type."""
        for worker, token in enumerate(tokens):
            auth = {"Authorization": f"Bearer {token}"}
            path = f"/clients/{worker}"
            answer = api.post("/webhook-endpoints", json={"url": self.receiver.url + path, "description": f"chaos {worker}"}, headers=auth)
            answer.raise_for_status()
            endpoint = answer.json()
            self.receiver.secrets[path] = endpoint["secret"]
            self.endpoints.append(Endpoint(worker, endpoint["id"], path, auth))

    def reauthorise(self, tokens: list[str]) -> None:
        for endpoint in self.endpoints:
            endpoint.auth = {"Authorization": f"Bearer {tokens[endpoint.worker]}"}

    def stop(self) -> None:
        self.receiver.stop()


class History:
    """Every payout insert and status change in the table's stream, oldest first, read on from
    where the last reading stopped."""

    def __init__(self, stack: RunningStack) -> None:
        self.streams = stack.client("dynamodbstreams")
        self.arn = stack.client("dynamodb").describe_table(TableName=stack.physical("Table"))["Table"]["LatestStreamArn"]
        self.changes: list[Change] = []
        self._after: dict[str, str] = {}  # shard → the last sequence number read

    def read(self) -> list[Change]:
        for shard in self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]:
            shard_id = shard["ShardId"]
            where: dict[str, str] = {"ShardIteratorType": "TRIM_HORIZON"}
            if shard_id in self._after:
                where = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self._after[shard_id]}
            iterator = self.streams.get_shard_iterator(StreamArn=self.arn, ShardId=shard_id, **where)["ShardIterator"]
            while iterator:
                page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                for record in page["Records"]:
                    self._after[shard_id] = record["dynamodb"]["SequenceNumber"]
                    self._note(record)
                if not page["Records"]:
                    break
                iterator = page.get("NextShardIterator")
        return list(self.changes)

    def _note(self, record: dict[str, Any]) -> None:
        change = record["dynamodb"]
        keys, new, old = change["Keys"], change.get("NewImage"), change.get("OldImage")
        if not keys["pk"]["S"].startswith("PAYOUT#") or keys["sk"]["S"] != "PAYOUT" or new is None:
            return
        if record["eventName"] == "INSERT":
            kind = "payout.created"
        elif old is not None and old["status"]["S"] != new["status"]["S"]:
            kind = f"payout.{new['status']['S']}"
        else:
            return
        self.changes.append(Change(new["id"]["S"], kind, int(new["version"]["N"])))


def _delivered_in_time(request: dict[str, Any]) -> bool:
    return bool(request.get("verified")) and not request.get("slow") and 200 <= int(request.get("answered", 0)) < 300


def _event(request: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(request["body"]))


def wait_for_deliveries(
    stack: RunningStack, history: History, hooks: Webhooks, timeout: float, progress: Callable[[str], None]
) -> list[Change]:
    """Wait until every state change in the table's history reached its endpoint in time and the
    delivery queue is empty (each attempt recorded, every duplicate message settled), or the time
    is up; the changes."""
    deadline = time.monotonic() + timeout
    while True:
        wanted = history.read()
        got = {(_event(r)["data"]["object"]["id"], _event(r)["type"]) for r in hooks.receiver.posts() if _delivered_in_time(r)}
        missing = sum((change.payout_id, change.type) not in got for change in wanted)
        queued = _count_messages(stack, "WebhookDeliveriesQueue")
        progress(
            f"{len(wanted) - missing} of {len(wanted)} state changes delivered, "
            f"{len(hooks.receiver.posts())} attempts received, {queued} delivery messages queued"
        )
        if (not missing and not queued) or time.monotonic() >= deadline:
            return wanted
        time.sleep(2)


def deliveries(api: httpx.Client, endpoint: Endpoint) -> list[dict[str, Any]]:
    return payouts._pages(api, f"/webhook-endpoints/{endpoint.id}/deliveries", endpoint.auth, 100)


class Checklist(Protocol):
    counts: dict[str, Any]

    def check(self, ok: bool, text: str) -> None: ...


def check(
    report: Checklist,
    stack: RunningStack,
    api: httpx.Client,
    hooks: Webhooks,
    wanted: list[Change],
    owner: dict[str, int],
    kills: int,
    earlier: dict[str, list[str]],
) -> None:
    """The invariants of the module docstring, each a line of the report; the counts into it.
    ``earlier``: the dead letters already taken off their queues (by name), still unexplained."""
    posts = hooks.receiver.posts()
    by_path = {endpoint.path: endpoint for endpoint in hooks.endpoints}

    # Every signature verified, and every event went to its owner's endpoint only.
    unverified = [r for r in posts if not r.get("verified")]
    report.check(not unverified, f"{len(posts) - len(unverified)} of {len(posts)} attempts carried a valid signature for their endpoint")
    strangers = [r for r in posts if r["path"] not in by_path or owner.get(_event(r)["data"]["object"]["id"]) != by_path[r["path"]].worker]
    report.check(not strangers, f"{len(strangers)} attempts reached an endpoint that is not their payout owner's")

    # None emitted twice: one id per state change, one body per id, no event without a change.
    bodies: dict[str, set[bytes]] = defaultdict(set)
    ids_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    versions: dict[str, tuple[str, str, int]] = {}
    for request in posts:
        event = _event(request)
        if request["headers"].get("webhook-id") != event["id"]:
            bodies["header-mismatch"].add(request["body"])
        bodies[event["id"]].add(request["body"])
        ids_of[(event["data"]["object"]["id"], event["type"])].add(event["id"])
        versions[event["id"]] = (event["data"]["object"]["id"], event["type"], int(event["data"]["object"]["version"]))
    history = {(change.payout_id, change.type, change.version) for change in wanted}
    changed_twice = Counter((change.payout_id, change.type) for change in wanted)
    report.check(
        all(count == 1 for count in changed_twice.values()),
        f"the table's history: {len(wanted)} state changes of {len({c.payout_id for c in wanted})} payouts, none reached twice",
    )
    two_bodies = [event_id for event_id, seen in bodies.items() if len(seen) > 1 or event_id == "header-mismatch"]
    two_ids = [pair for pair, seen in ids_of.items() if len(seen) > 1]
    phantoms = [event_id for event_id, about in versions.items() if about not in history]
    report.check(
        not two_bodies and not two_ids and not phantoms,
        f"{len(versions)} events, none emitted twice: {len(two_ids)} state changes with two event ids, "
        f"{len(two_bodies)} event ids with two bodies, {len(phantoms)} events about no change in the table",
    )

    # Every state change delivered to its owner: a 2xx in time at the receiver, and in the list.
    listed: dict[str, list[dict[str, Any]]] = {}
    for endpoint in hooks.endpoints:
        listed[endpoint.path] = deliveries(api, endpoint)
    delivered_ids = {_event(r)["id"] for r in posts if _delivered_in_time(r)}
    listed_delivered = {item["event_id"] for items in listed.values() for item in items if item["outcome"] == "delivered"}
    undelivered = [
        change
        for change in wanted
        if not (ids := ids_of.get((change.payout_id, change.type))) or not (ids & delivered_ids) or not (ids & listed_delivered)
    ]
    report.check(
        not undelivered,
        f"every state change delivered (2xx) to its owner's endpoint: {len(wanted) - len(undelivered)} of {len(wanted)}",
    )
    for change in undelivered[:5]:
        print(f"      not delivered: {change}")

    # The deliveries list against the receiver, per endpoint and event.
    seen: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for request in posts:
        seen[(request["path"], request["headers"].get("webhook-id", ""))].append(request)
    disagreements: list[str] = []
    unrecorded = 0
    for path, items in listed.items():
        attempts: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for item in items:
            attempts[item["event_id"]].append(item)
        for event_id in set(attempts) | {event_id for (p, event_id) in seen if p == path}:
            recorded, received = attempts.get(event_id, []), seen.get((path, event_id), [])
            answered = Counter(int(r["answered"]) for r in received if not r.get("slow"))
            codes = Counter(int(item["status_code"]) for item in recorded if item["status_code"] is not None)
            stalls_recorded = sum(1 for item in recorded if item["status_code"] is None and item["outcome"] == "failed")
            missing = len(received) - len(recorded)
            stalls = sum(1 for r in received if r.get("slow"))
            # Delivered is a 2xx in time; a 2xx the worker's deadline cut short is failed with its reason.
            wrong_outcome = [
                i
                for i in recorded
                if (i["outcome"] == "delivered") != (i["status_code"] is not None and 200 <= i["status_code"] < 300 and not i["error"])
            ]
            if missing < 0 or codes - answered or stalls_recorded < stalls - missing or wrong_outcome:
                shown = [(i["status_code"], i["outcome"]) for i in recorded]
                disagreements.append(f"{path} {event_id}: listed {shown}, received {dict(answered)} and {stalls} stalls")
            unrecorded += max(missing, 0)
    report.check(
        not disagreements and unrecorded <= kills,
        f"the deliveries lists agree with the receiver ({sum(map(len, listed.values()))} attempts listed, "
        f"{unrecorded} received but unrecorded, at most the {kills} killed invocations)",
    )
    for line in disagreements[:5]:
        print(f"      {line}")

    # A delivery message lands in its DLQ when its invocations outlive the reliability stack's 6 s
    # visibility five times (a busy machine, a killed process's cold start): accounted for only
    # when its (event, endpoint) pair was delivered anyway. The fan-out's DLQ (stream batches
    # given up on) must be empty.
    dead = {name: sorted(set(earlier.get(name, [])) | set(_receive_all(stack, name))) for name in ENDPOINT_DLQS}
    delivered_pairs = {
        (endpoint.id, item["event_id"]) for endpoint in hooks.endpoints for item in listed[endpoint.path] if item["outcome"] == "delivered"
    }
    unaccounted = [body for body in dead["WebhookDeliveriesDLQ"] if _pair(body) not in delivered_pairs] + dead["WebhookFanOutDLQ"]
    report.check(
        not unaccounted,
        f"webhook dead letters: { {name: len(bodies) for name, bodies in dead.items()} }; every delivery message among them "
        "for a pair delivered anyway, none from the fan-out",
    )
    for body in unaccounted[:5]:
        print(f"      {body[:200]}")

    stalled = [r for r in posts if r.get("slow")]
    per_event = Counter(_event(r)["id"] for r in posts if _delivered_in_time(r))
    report.counts["merchant_webhooks"] = {
        "endpoints": len(hooks.endpoints),
        "state_changes": len(wanted),
        "events": len(versions),
        "attempts": len(posts),
        "failed_attempts": sum(1 for r in posts if not _delivered_in_time(r)),
        "answered_500": sum(1 for r in posts if r.get("answered") == 500),
        "slow_attempts": len(stalled),
        "timed_out_attempts_listed": sum(1 for items in listed.values() for i in items if i["error"] and "timed out" in i["error"]),
        "redundant_deliveries": sum(count - 1 for count in per_event.values()),
        "unrecorded_attempts": unrecorded,
        "dead_letters": {name: len(bodies) for name, bodies in dead.items()},
    }


def _pair(body: str) -> tuple[str, str]:
    try:
        message = json.loads(body)
        return str(message.get("endpoint_id")), str(message.get("event_id"))
    except (ValueError, AttributeError):
        return "", ""


def _receive_all(stack: RunningStack, logical_id: str) -> list[str]:
    """The bodies of the messages now visible on a queue (left on it, invisible for a minute)."""
    sqs, url, bodies = stack.client("sqs"), stack.physical(logical_id), []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", []):
        bodies += [message["Body"] for message in batch]
    return bodies


def _count_messages(stack: RunningStack, logical_id: str) -> int:
    attributes = stack.client("sqs").get_queue_attributes(QueueUrl=stack.physical(logical_id), AttributeNames=["All"])["Attributes"]
    names = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed")
    return sum(int(attributes.get(name, 0)) for name in names)
