"""The local stack's own limit for creates: moto answering a create's exact calls, driven directly.

A payout create is one ``TransactWriteItems`` (built by :func:`payrail.db.payouts.create`, the
code the function runs, with its balance reserve and ledger entry) and one ``SendMessage``. Here the same data-access code sends them
straight to the stack's moto server from N client threads: no gateway, no function, no IAM check.
The writes go to a scratch copy of the table (same keys and indexes) and a scratch queue, so the
running stack's workers and reconciliation never see them. ``bench.run`` divides the stack's
creates/s at the same concurrency by this rate.

Runs in its own process (``python -m bench.moto_limit``) because payrail reads its table name
and endpoint from the environment, as a function does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "layers/common"))


def _scratch_table(dynamodb: Any, source: str) -> str:
    """An empty table with ``source``'s keys and indexes."""
    described = dynamodb.describe_table(TableName=source)["Table"]
    name = f"{source}-limit-{uuid.uuid4().hex[:8]}"
    indexes = [
        {"IndexName": index["IndexName"], "KeySchema": index["KeySchema"], "Projection": index["Projection"]}
        for index in described.get("GlobalSecondaryIndexes", [])
    ]
    dynamodb.create_table(
        TableName=name,
        KeySchema=described["KeySchema"],
        AttributeDefinitions=described["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
        **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
    )
    return name


def measure(table: str, clients: int, requests: int) -> dict[str, Any]:
    # Imported here: the environment (table name, endpoint) must be set first.
    from payrail import aws, clock, db, queues
    from payrail.db import balances
    from payrail.db import payouts as store

    scratch = _scratch_table(aws.client("dynamodb"), table)
    os.environ["TABLE_NAME"] = scratch
    queue_url = aws.client("sqs").create_queue(QueueName=f"payouts-limit-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    user_id = "user-moto-limit"
    # Funded first, as every create needs the money: the funding transaction the events worker writes.
    funding = balances.credit_actions(user_id, "EUR", 1000 * (requests + 10), f"evt_limit_{uuid.uuid4().hex}", clock.text())
    db.table().transact_write(funding)
    counter = iter(range(requests))
    lock = threading.Lock()
    failures = 0

    def create_one() -> bool:
        now = time.time()
        stamp = clock.from_epoch(now)
        payout = {
            "id": f"po_{uuid.uuid4().hex}",
            "status": "pending",
            "amount": 1000,
            "currency": "EUR",
            "beneficiary": {"name": "Ada Lovelace", "iban": "DE89370400440532013000"},
            "reference": "limit",
            "created_at": stamp,
            "updated_at": stamp,
        }
        outcome = store.create(user_id=user_id, key=uuid.uuid4().hex, fingerprint="f", payout=payout, now=now, rate_limit=10**9)
        if not isinstance(outcome, store.Created):
            return False
        queues.send(queue_url, {"payout_id": payout["id"]})
        return True

    def loop() -> None:
        nonlocal failures
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            if not create_one():
                with lock:
                    failures += 1

    for _ in range(3):  # warm the clients and the connection pool
        create_one()
    threads = [threading.Thread(target=loop) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"clients": clients, "requests": requests, "failures": failures, "per_second": round(requests / elapsed, 1), "table": scratch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moto", required=True, help="the stack's moto endpoint")
    parser.add_argument("--table", required=True, help="the stack's table, whose schema the scratch copy takes")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": args.moto,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "TABLE_NAME": args.table,
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    print(json.dumps(measure(args.table, args.clients, args.requests)))


if __name__ == "__main__":
    main()
