"""Creates per second for ONE user at 16 clients (every create updates that user's one balance
item: a hot key) against 16 different users at 16 clients, as a ratio, over HTTP on the local stack.

Each user is funded first through the sandbox provider's funding webhook. Bounded: each run sends
at most ``--requests`` creates and stops after ``--max-seconds``.

    .venv/bin/python -m bench.hot_balance [--requests 160] [--runs 1]

What the local figure can and cannot say: moto applies one transaction at a time and never
answers ``TransactionConflict``, so locally the one-user run pays only for what the shared item
costs in the product's own code (none of its retries fire). On DynamoDB, two transactions that
touch the same item at once conflict and one is cancelled; the create retries it with jittered
backoff (``payrail.db.payouts.CREATE_CONFLICT_ATTEMPTS``), so one user's creates are serialised on
their balance item: about one transaction's latency each (10-25 ms), i.e. some 40-100 creates/s
per user and currency, whatever the number of clients, while different users scale out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench import http_load
from devstack.running import RunningStack
from scenarios import payouts
from scenarios.signin import sign_in

CLIENTS = 16
STACK_PARAMETERS = "PayoutRateLimitPerMinute=1000000 AuthRateLimitPerMinute=1000000"


def measure(stack_url: str, requests: int, runs: int, max_seconds: float) -> dict[str, Any]:
    with httpx.Client(base_url=stack_url, timeout=60) as api:
        api.put("/sandbox/payments/webhooks", json={"enabled": True, "delay_seconds": 0, "failure_rate": 0, "scheme": "standard"})
        users = [{"Authorization": f"Bearer {sign_in(api, f'hot-{n}-{uuid.uuid4().hex[:6]}@example.com')}"} for n in range(CLIENTS)]
        for auth in users:
            payouts.fund(api, auth, {"ZAR": 10**10})
        # Webhooks off for the load itself: the payouts' own status webhooks would compete for the stack.
        api.put("/sandbox/payments/webhooks", json={"enabled": False, "delay_seconds": 0, "failure_rate": 0, "scheme": "standard"})
        for auth in users[:2]:
            payouts.create(api, auth, payouts.body(100, "warm-up")).raise_for_status()

    def sender(spread: bool) -> http_load.Request:
        def send(client: httpx.Client, index: int) -> httpx.Response:
            auth = users[index % CLIENTS] if spread else users[0]
            return client.post("/payouts", json=payouts.body(100, f"hot {index}"), headers={**auth, "Idempotency-Key": str(uuid.uuid4())})

        return send

    def created(response: httpx.Response) -> bool:
        return response.status_code == 201

    one, many = [], []
    for _ in range(runs):  # alternately, so both see the same machine
        one.append(http_load.run(stack_url, sender(False), CLIENTS, requests, max_seconds, ok=created))
        many.append(http_load.run(stack_url, sender(True), CLIENTS, requests, max_seconds, ok=created))
    one_rate = statistics.median(r.per_second for r in one)
    many_rate = statistics.median(r.per_second for r in many)
    return {
        "clients": CLIENTS,
        "requests_per_run": requests,
        "runs": runs,
        "one_user": {"per_second": round(one_rate, 1), "errors": sum(r.errors for r in one), "p99_ms": max(r.p99_ms for r in one)},
        "sixteen_users": {"per_second": round(many_rate, 1), "errors": sum(r.errors for r in many), "p99_ms": max(r.p99_ms for r in many)},
        "ratio_one_to_sixteen": round(one_rate / many_rate, 2) if many_rate else None,
    }


def run_on_a_stack(requests: int, runs: int, max_seconds: float) -> dict[str, Any]:
    stack = RunningStack(Path(tempfile.mkdtemp(prefix="payrail-hot-")), parameters=STACK_PARAMETERS)
    try:
        return measure(stack.api_url, requests, runs, max_seconds)
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=160, help="creates per run and level")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=60)
    args = parser.parse_args()
    print(json.dumps(run_on_a_stack(args.requests, args.runs, args.max_seconds), indent=2))


if __name__ == "__main__":
    main()
