"""Benchmark: merchant webhook delivery latency, from a payout's state change to the receiver's
2xx, and the AWS calls the fan-out and the delivery worker make per delivered event.

What runs: a fresh local stack (``python -m devstack start``, IAM enforced, the sandbox provider's
webhooks with zero delay, the default retry schedule). One signed-in user, funded through the
sandbox provider, registers an endpoint for every event type on a loopback receiver
(scenarios/receiver.py, answering 202). Two warm-up payouts are carried to ``paid`` and their
events delivered (cold starts out of the figures); then ``--payouts`` payouts are created one at
a time from one client, each once the previous one's events (``payout.created``, ``submitted``,
``processing``, ``paid``; one per version of the payout) have been answered 2xx. One payout in
flight measures the pipeline's own latency; creating them all at once on two cores would measure
the queue in front of a saturated stack (each payout's path runs eight functions).

Latency of an event: the receiver's wall clock just after it wrote its 2xx, minus the event's
``created_at``. That is the timestamp the state-changing write itself stores on the payout
(``created_at`` for ``payout.created``, ``updated_at`` for the others; the fan-out copies it
into the event): the moment the product decided the change, a few milliseconds before the write
committed, so the figure includes the write, the stream, the fan-out, the queue and the worker's
POST. The stack and the receiver run on one machine, so both read the same clock.

AWS calls per delivered event: the calls the runtime counted inside WebhookFanOutFunction and
WebhookDeliveryWorkerFunction (``GET /_local/functions``) during the measured payouts, divided by
the distinct events delivered. Not in it: Lambda's own polling (the stream's ``GetRecords``, which
is not billed, and the SQS mapping's ``ReceiveMessage`` / ``DeleteMessage``, two billed SQS
requests per delivery message on AWS).

    python -m bench.webhook_delivery [--payouts 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import uuid
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench import http_load
from devstack.running import RunningStack
from scenarios import payouts
from scenarios.receiver import Recorder, delivered_events, every_event_delivered
from scenarios.signin import sign_in_patiently
from scenarios.waiting import TimedOut, wait_for

STACK_PARAMETERS = "PayoutRateLimitPerMinute=1000000 AuthRateLimitPerMinute=1000000 SandboxWebhookDelaySeconds=0"
FUNCTIONS = ("WebhookFanOutFunction", "WebhookDeliveryWorkerFunction")
LIFECYCLE = ("payout.created", "payout.submitted", "payout.processing", "payout.paid", "payout.failed")
WARM_UP = 2


def _calls(api: httpx.Client) -> Counter[str]:
    """The fan-out's and the delivery worker's AWS calls so far, with their invocations."""
    stats = api.get("/_local/functions").json()
    total: Counter[str] = Counter()
    for name in FUNCTIONS:
        total.update({**stats[name]["aws_calls"], "invocations": stats[name]["invocations"]})
    return total


def _settled(receiver: Recorder, ids: set[str], timeout: float) -> None:
    wait_for(lambda: every_event_delivered(receiver.posts(), ids), timeout=timeout, interval=0.1)


def _summary(seconds: list[float]) -> dict[str, Any]:
    return {
        "n": len(seconds),
        "p50_ms": round(http_load.percentile(seconds, 0.5) * 1000, 1),
        "p99_ms": round(http_load.percentile(seconds, 0.99) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
    }


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


def _create(api: httpx.Client, auth: dict[str, str], index: int, attempts: int = 3) -> str:
    """A payout created as a client does: a 5xx (a create that outlasted its function's timeout on
    a loaded machine) is sent again with the same Idempotency-Key, which cannot make a second payout."""
    key = str(uuid.uuid4())
    for _ in range(attempts):
        response = payouts.create(api, auth, payouts.body(1000 + index, f"webhook bench {index}"), key)
        if response.status_code < 500:
            break
    response.raise_for_status()
    return str(response.json()["id"])


def measure_on(api: httpx.Client, receiver: Recorder, count: int, timeout: float = 600) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {sign_in_patiently(api, 'webhook-bench@example.com')}"}
    api.put(
        "/sandbox/payments/webhooks", json={"enabled": True, "delay_seconds": 0, "failure_rate": 0, "scheme": "standard"}
    ).raise_for_status()
    payouts.fund(api, auth, {"ZAR": 10**12})
    registered = api.post("/webhook-endpoints", json={"url": f"{receiver.url}/hooks", "description": "benchmark"}, headers=auth)
    registered.raise_for_status()

    warm = {payouts.create(api, auth, payouts.body(100 + index, f"warm-up {index}")).json()["id"] for index in range(WARM_UP)}
    _settled(receiver, warm, timeout)  # nothing of the warm-up still in flight when the counts are read
    before = _calls(api)

    ids: set[str] = set()
    try:
        for index in range(count):
            payout_id = _create(api, auth, index)
            ids.add(payout_id)
            _settled(receiver, {payout_id}, timeout)
    except TimedOut as error:
        arrived = Counter(entry["event"]["type"] for entry in delivered_events(receiver.posts(), ids))
        statuses = Counter(status for payout_id, status in payouts.statuses(api, auth).items() if payout_id in ids)
        raise TimedOut(f"{error}: events delivered {dict(arrived)}, payouts {dict(statuses)}") from None
    return figures(receiver.posts(), ids, before, _calls(api))


def figures(posts: list[dict[str, Any]], ids: set[str], before: Counter[str], after: Counter[str]) -> dict[str, Any]:
    """The figures of the receiver's ``posts`` for the payouts ``ids``, and of the calls counted
    between ``before`` and ``after`` (:func:`_calls`)."""
    calls = after.copy()
    calls.subtract(before)
    calls = +calls
    invocations = calls.pop("invocations", 0)
    delivered = delivered_events(posts, ids)
    attempts = [post for post in posts if json.loads(post["body"])["data"]["object"]["id"] in ids]
    by_type: dict[str, list[float]] = defaultdict(list)
    for entry in delivered:
        by_type[entry["event"]["type"]].append(entry["answered_at"] - _epoch(entry["event"]["created_at"]))
    events = len(delivered)
    return {
        "payouts": len(ids),
        "load_average": [round(value, 1) for value in os.getloadavg()],
        "events_delivered": events,
        "posts_received": len(attempts),
        "latency": {
            "all": _summary([seconds for values in by_type.values() for seconds in values]),
            **{kind: _summary(by_type[kind]) for kind in LIFECYCLE if kind in by_type},
        },
        "aws_calls_per_delivered_event": round(sum(calls.values()) / events, 2),
        "aws_operations_per_delivered_event": {operation: round(n / events, 2) for operation, n in sorted(calls.items())},
        "invocations_per_delivered_event": round(invocations / events, 2),
    }


def measure(count: int) -> dict[str, Any]:
    stack = RunningStack(Path(tempfile.mkdtemp(prefix="payrail-webhook-bench-")), parameters=STACK_PARAMETERS)
    receiver = Recorder()
    try:
        with httpx.Client(base_url=stack.api_url, timeout=60) as api:
            return measure_on(api, receiver, count)
    finally:
        receiver.stop()
        stack.stop()


def render(results: dict[str, Any]) -> list[str]:
    """The figures as BENCHMARKS.md shows them."""
    lines = [
        "## Merchant webhook delivery (`python -m bench.webhook_delivery`)",
        "",
        f"{results['payouts']} payouts created one at a time on the local stack (zero sandbox delay), each once the last one's",
        "events (created, submitted, processing, paid) had reached an endpoint on a loopback receiver. Latency: the receiver's 2xx",
        "written, minus the event's `created_at` (the timestamp the state-changing write stores on the payout), so it covers",
        "the write, the table's stream, the fan-out, the delivery queue and the worker's POST.",
        "",
        "| event type | events | p50 ms | p99 ms | max ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind, row in results["latency"].items():
        lines.append(f"| {kind if kind != 'all' else '**all**'} | {row['n']} | {row['p50_ms']} | {row['p99_ms']} | {row['max_ms']} |")
    lines += [
        "",
        "AWS calls per delivered event (WebhookFanOutFunction + WebhookDeliveryWorkerFunction, counted inside them): "
        f"**{results['aws_calls_per_delivered_event']:g}** in {results['invocations_per_delivered_event']:g} invocations: "
        f"{results['aws_operations_per_delivered_event']}.",
        f"{results['events_delivered']} events delivered in {results['posts_received']} POSTs; the machine's load average "
        f"(1, 5, 15 min) at the end: {results['load_average']}.",
        "Lambda's own polling is not counted: the stream's reads (not billed) and, on AWS, the SQS mapping's receive and",
        "delete, 2 billed SQS requests per delivery message.",
        "",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payouts", type=int, default=30, help="payouts measured (about four events each)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args()
    results = measure(args.payouts)
    print(json.dumps(results, indent=2) if args.json else "\n".join(render(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
