"""How many AWS API calls one ``POST /payouts`` costs: new payout, replay, rate-limited, insufficient funds.

The handler runs in-process against moto, built from template.yaml like the tests. Every AWS
call any client makes is counted with botocore's ``before-call`` event hook, registered on each
client as it is created, so the figures include everything the request does (DynamoDB, SQS,
Secrets Manager). The session keys are fetched once when the bench mints its token and are then
cached for five minutes by Powertools Parameters, as in a warm Lambda: the figures are for warm
requests (a cold start adds one secretsmanager.GetSecretValue).

    make bench            # or: .venv/bin/python -m bench.create_calls [--requests N]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers/common"), str(ROOT)]

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from devstack.stack import free_port  # noqa: E402
from tests.payouts_support import VALID_BODY, fund, http_event  # noqa: E402
from tests.support import LambdaContext, Resources, function_environment_of, load_function  # noqa: E402

calls: Counter[str] = Counter()


def _count(event_name: str, **_: Any) -> None:
    # event_name is "before-call.<service>.<Operation>"
    calls[event_name.split(".", 1)[1]] += 1


def _hook_every_client() -> None:
    """Register the hook on every botocore client created from now on, whichever session makes it."""
    original = boto3.session.Session.client

    def client(self: boto3.session.Session, *args: Any, **kwargs: Any) -> Any:
        made = original(self, *args, **kwargs)
        made.meta.events.register("before-call.*.*", _count)
        return made

    boto3.session.Session.client = client  # type: ignore[method-assign]


def _scenario(handler: Any, token: str, keys: list[str], body: dict[str, Any]) -> dict[str, Any]:
    per_request, statuses, millis = [], Counter[int](), []
    for key in keys:
        calls.clear()
        event = http_event("POST", "/payouts", body=body, headers={"authorization": f"Bearer {token}", "idempotency-key": key})
        started = time.perf_counter()
        response = handler(event, LambdaContext())
        millis.append((time.perf_counter() - started) * 1000)
        statuses[response["statusCode"]] += 1
        per_request.append(dict(calls))
    totals = [sum(c.values()) for c in per_request]
    operations = Counter[str]()
    for c in per_request:
        operations.update(c)
    return {
        "statuses": dict(statuses),
        "calls_mean": statistics.mean(totals),
        "calls_max": max(totals),
        "operations": {op: n / len(keys) for op, n in sorted(operations.items())},
        "ms_median": statistics.median(millis),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="requests per scenario")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Payrail")

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        resources = Resources(f"http://127.0.0.1:{port}")
        # The warm-up, the new payouts and the replayed key's first request fill the window exactly
        # (a replay writes nothing, so it does not count); every "rate limited" request is over it.
        limit = args.requests + 2
        resources.functions["PayoutsApiFunction"].environment["PAYOUT_RATE_LIMIT_PER_MINUTE"] = str(limit)
        # The bench user is funded first, through the payment events worker (before the hook: the
        # funding is not part of any request counted); another user has less than a payout.
        fund(resources, "bench-user", 10**9, VALID_BODY["currency"])
        fund(resources, "bench-short", VALID_BODY["amount"] - 1, VALID_BODY["currency"])
        _hook_every_client()
        with function_environment_of(resources, "PayoutsApiFunction"):
            os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
            from payrail.auth.tokens import issue_access_token
            from payrail.settings import SignedInSettings

            handler = load_function(resources, "PayoutsApiFunction").lambda_handler
            signed_in = resources.settings("PayoutsApiFunction", SignedInSettings)
            token = issue_access_token(signed_in, "bench-user", "bench-session")
            short = issue_access_token(signed_in, "bench-short", "bench-session-short")
            # Stay inside one rate-limit minute so "rate limited" really is over the limit.
            if time.time() % 60 > 40:
                time.sleep(61 - time.time() % 60)
            warm = _scenario(handler, token, [f"warm-{uuid.uuid4()}"], VALID_BODY)
            new = _scenario(handler, token, [f"new-{uuid.uuid4()}" for _ in range(args.requests)], VALID_BODY)
            replay_key = f"replay-{uuid.uuid4()}"
            _scenario(handler, token, [replay_key], VALID_BODY)
            replay = _scenario(handler, token, [replay_key] * args.requests, VALID_BODY)
            limited = _scenario(handler, token, [f"over-{uuid.uuid4()}" for _ in range(args.requests)], VALID_BODY)
            insufficient = _scenario(handler, short, [f"short-{uuid.uuid4()}" for _ in range(args.requests)], VALID_BODY)
    finally:
        server.stop()
    results = {
        "warm-up (first request)": warm,
        "new payout": new,
        "replay": replay,
        "rate limited": limited,
        "insufficient funds": insufficient,
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"AWS API calls per POST /payouts ({args.requests} requests per scenario, handler in-process on moto)\n")
    print(f"{'scenario':<28}{'status':<16}{'calls/request':>14}{'max':>5}  operations per request")
    for name, r in results.items():
        statuses = ",".join(f"{s}x{n}" for s, n in sorted(r["statuses"].items()))
        operations = ", ".join(f"{op} {n:g}" for op, n in r["operations"].items())
        print(f"{name:<28}{statuses:<16}{r['calls_mean']:>14.2f}{r['calls_max']:>5}  {operations}")
    print("\ntarget: 2 for a new payout (one TransactWriteItems, one SendMessage), 1 for a replay, 1 for insufficient funds")


if __name__ == "__main__":
    main()
