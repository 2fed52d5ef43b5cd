"""Benchmark: a page of ``GET /payouts`` costs the same with 100 items in the table as with 50,000.

What runs: a fresh local stack (``python -m devstack start``, IAM enforced). One signed-in user
creates 12 payouts over HTTP and waits for them to be paid; the table is topped up with other users' payouts (50 each, the
items ``POST /payouts`` writes, seeded straight into moto) to 100 items, and the user's first
page (10, newest first) is read ``--requests`` times; then it is topped up to ``--items`` and
read again. Reported per size: the p50 and p95 over HTTP, and PayoutsApiFunction's latency
budget over those requests (AWS time and own time per invocation, from ``GET /_local/functions``);
and the ratio of the p50s (target ≤ 1.3).

    python -m bench.table_growth [--items 50000] [--requests 60] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench import http_load
from devstack.running import RunningStack
from scenarios import payouts
from scenarios.signin import sign_in

STACK_PARAMETERS = "PayoutRateLimitPerMinute=1000000 AuthRateLimitPerMinute=1000000"
FUNCTION = "PayoutsApiFunction"
PER_USER = 50
PAYOUTS = 12  # with their ledger, events and deliveries, about 100 items
PAGE = 10


def _count(dynamodb: Any, table: str) -> int:
    total, start = 0, None
    while True:
        page = dynamodb.scan(TableName=table, Select="COUNT", **({"ExclusiveStartKey": start} if start else {}))
        total += page["Count"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return total


def _seed(dynamodb: Any, table: str, count: int, first: int) -> None:
    """``count`` payouts of other users, as the payouts module stores them."""
    requests = []
    for number in range(first, first + count):
        payout_id = f"po_{uuid.uuid4().hex[:20]}"
        created = f"2026-01-01T00:00:{number % 60:02d}.{number:06d}Z"
        requests.append(
            {
                "PutRequest": {
                    "Item": {
                        "pk": {"S": f"PAYOUT#{payout_id}"},
                        "sk": {"S": "PAYOUT"},
                        "gsi1pk": {"S": f"USER#seeded-{number // PER_USER}#PAYOUTS"},
                        "gsi1sk": {"S": f"{created}#{payout_id}"},
                        "id": {"S": payout_id},
                        "status": {"S": "paid"},
                        "amount": {"N": "1000"},
                        "currency": {"S": "ZAR"},
                        "reference": {"S": f"seeded {number}"},
                        "beneficiary": {"M": {key: {"S": value} for key, value in payouts.BENEFICIARY.items()}},
                        "created_at": {"S": created},
                    }
                }
            }
        )
    for start in range(0, len(requests), 25):
        batch = {table: requests[start : start + 25]}
        while batch:
            batch = dynamodb.batch_write_item(RequestItems=batch).get("UnprocessedItems") or {}


def _budget(api: httpx.Client) -> dict[str, Any]:
    return dict(api.get("/_local/functions").json()[FUNCTION])


def _measure(api: httpx.Client, auth: dict[str, str], requests: int) -> dict[str, Any]:
    for _ in range(5):  # warm every worker the page will use
        api.get("/payouts", params={"limit": PAGE}, headers=auth).raise_for_status()
    before = _budget(api)
    latencies = []
    for _ in range(requests):
        started = time.perf_counter()
        response = api.get("/payouts", params={"limit": PAGE}, headers=auth)
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()
        assert len(response.json()["items"]) == PAGE
    after = _budget(api)
    invocations = after["timed_invocations"] - before["timed_invocations"]
    return {
        "p50_ms": round(http_load.percentile(latencies, 0.5) * 1000, 1),
        "p95_ms": round(http_load.percentile(latencies, 0.95) * 1000, 1),
        "requests": requests,
        # The function's mean per invocation over exactly these requests (the p50s the runtime
        # reports cover its last 1,000 invocations, the warm-up and the other size included).
        "aws_ms_mean": round((after["aws_ms"] - before["aws_ms"]) / invocations, 2),
        "own_ms_mean": round((after["own_ms"] - before["own_ms"]) / invocations, 2),
    }


def measure(items: int, requests: int) -> dict[str, Any]:
    stack = RunningStack(Path(tempfile.mkdtemp(prefix="payrail-growth-")), parameters=STACK_PARAMETERS)
    try:
        api = httpx.Client(base_url=stack.api_url, timeout=60)
        auth = {"Authorization": f"Bearer {sign_in(api, 'growth@example.com')}"}
        api.put(
            "/sandbox/payments/webhooks", json={"enabled": True, "delay_seconds": 0, "failure_rate": 0, "scheme": "standard"}
        ).raise_for_status()
        payouts.fund(api, auth)
        created = {payouts.create(api, auth, payouts.body(1000 + index, f"growth {index}")).json()["id"] for index in range(PAYOUTS)}
        # The payouts' pipeline (worker, provider, webhooks) finishes before anything is timed.
        payouts.watch(lambda: payouts.statuses(api, auth), created, 180)
        time.sleep(2)
        dynamodb, table = stack.client("dynamodb"), stack.physical("Table")
        results: dict[str, Any] = {}
        seeded = 0
        for size in (100, items):
            present = _count(dynamodb, table)
            if present < size:
                _seed(dynamodb, table, size - present, seeded)
                seeded += size - present
            results[str(size)] = {"items_in_table": _count(dynamodb, table), **_measure(api, auth, requests)}
        small, large = results["100"]["p50_ms"], results[str(items)]["p50_ms"]
        results["ratio_p50"] = round(large / small, 2) if small else 0.0
        return results
    finally:
        stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000, help="items in the table for the large measurement")
    parser.add_argument("--requests", type=int, default=60, help="GET /payouts requests per size")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args()
    results = measure(args.items, args.requests)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"GET /payouts (page of {PAGE}, newest first), {args.requests} requests per size, one client")
    print("| items in the table | p50 ms | p95 ms | PayoutsApiFunction AWS ms / own ms (mean) |")
    print("| --- | --- | --- | --- |")
    for size, row in results.items():
        if size != "ratio_p50":
            print(f"| {row['items_in_table']:,} | {row['p50_ms']} | {row['p95_ms']} | {row['aws_ms_mean']} / {row['own_ms_mean']} |")
    print(f"p50 with {args.items:,} items ÷ with 100: {results['ratio_p50']} (target ≤ 1.3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
