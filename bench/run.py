"""``make bench``: every performance figure, measured side by side in one run, into BENCHMARKS.md.

Each figure is a median of several runs and each comparison a ratio measured in the same run:
AWS calls per operation, cold start against the floor, HTTP throughput and latency against
``GET /health``, create → paid latency, bank-sync throughput, and a cost estimate from the
measured call counts.

``--only NAME`` measures one self-contained piece (``webhook_delivery``, ``hot_balance``,
``table_growth``) and puts its section into the existing BENCHMARKS.md (and its figures into
BENCHMARKS.json), marked with when and how it was measured; the rest of the file stays as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import cold_start, hot_balance, http_load, layer_size, table_growth, webhook_delivery
from devstack.running import RunningStack
from scenarios import payouts
from scenarios.signin import sign_in

ROOT = Path(__file__).resolve().parent.parent
STACK_PARAMETERS = "PayoutRateLimitPerMinute=1000000 AuthRateLimitPerMinute=1000000"
# The concurrency at which creates through the stack are compared with moto's own rate.
LIMIT_CLIENTS = 8

# Public on-demand list prices, us-east-1, as published by AWS and read on 2025-06-01.
PRICES = {
    "api_gateway_http_per_million_requests": 1.00,
    "lambda_per_million_requests": 0.20,
    "lambda_arm64_per_gb_second": 0.0000133334,
    "dynamodb_per_million_write_units": 0.625,
    "dynamodb_per_million_read_units": 0.125,
    "sqs_per_million_requests": 0.40,
    "secrets_manager_per_10k_calls": 0.05,
}


def _python(*arguments: str, timeout: float = 1800) -> str:
    result = subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    return result.stdout


def create_calls(runs: int) -> dict[str, Any]:
    """AWS calls per POST /payouts (new, replay, rate limited, insufficient funds), handler in-process, warm."""
    samples = []
    for _ in range(runs):
        output = _python("-m", "bench.create_calls", "--json", "--requests", "20")
        samples.append(json.loads(output[output.index("\n{\n") + 1 :]))  # after the handler's metric lines
    names = [name for name in samples[0] if not name.startswith("warm-up")]
    return {name: statistics.median(sample[name]["calls_mean"] for sample in samples) for name in names}


def bank_sync(transactions: int, page_size: int) -> dict[str, Any]:
    output = _python("bench/bank_sync.py", "--transactions", str(transactions), "--page-size", str(page_size))
    start = output.index("\n{\n") + 1  # after the worker's metric lines
    return dict(json.loads(output[start : output.index("\n}\n", start) + 2]))


def moto_limit(stack: RunningStack, requests: int) -> dict[str, Any]:
    """Moto's rate for a create's exact calls at ``LIMIT_CLIENTS`` clients (bench/moto_limit.py)."""
    arguments = ["--moto", stack.moto_url, "--table", stack.physical("Table"), "--clients", str(LIMIT_CLIENTS)]
    output = _python("-m", "bench.moto_limit", *arguments, "--requests", str(requests), timeout=600)
    return dict(json.loads(output.strip().splitlines()[-1]))


def _function_calls(stack: RunningStack) -> dict[str, Counter[str]]:
    """Each function's AWS calls so far, and its invocations under the ``invocations`` key."""
    stats = httpx.get(f"{stack.api_url}/_local/functions", timeout=10).json()
    return {name: Counter({**values["aws_calls"], "invocations": values["invocations"]}) for name, values in stats.items()}


def latency_budget(stack: RunningStack) -> dict[str, dict[str, Any]]:
    """Each function's latency budget as the runtime reports it: p50 per invocation of the time
    inside its AWS calls and of its own time (handler and runtime), over its recent invocations."""
    stats = httpx.get(f"{stack.api_url}/_local/functions", timeout=10).json()
    return {
        name: {
            "invocations": values["timed_invocations"],
            "duration_p50_ms": values["duration_p50_ms"],
            "aws_p50_ms": values["aws_p50_ms"],
            "own_p50_ms": values["own_p50_ms"],
            "aws_share": round(values["aws_ms"] / values["duration_ms"], 2) if values["duration_ms"] else 0.0,
        }
        for name, values in sorted(stats.items())
        if values["timed_invocations"]
    }


# Requests per route in the sweep of the API's routes: enough for a p50, few enough to stay quick.
SWEEP_REQUESTS = 20


def sweep_routes(api: httpx.Client, auth: dict[str, str], payout_id: str) -> None:
    """Send each API route that a signed-in client can call again and again, and that changes
    nothing lasting, ``SWEEP_REQUESTS`` times, one at a time. Sign-in, creating payouts, the
    provider's webhooks and the sandbox were exercised on the way here."""
    # Deleted at the end: the load levels that follow must not deliver their payouts' events.
    endpoint = api.post(
        "/webhook-endpoints", headers=auth, json={"url": "http://127.0.0.1:9/hooks", "description": "bench"}
    ).raise_for_status()
    endpoint_id = endpoint.json()["id"]
    paths = [
        ("GET", "/health"),
        ("GET", "/"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("GET", "/auth/me"),
        ("GET", "/balances"),
        ("GET", "/balances/ZAR/ledger"),
        ("GET", "/payouts"),
        ("GET", f"/payouts/{payout_id}"),
        ("GET", "/webhook-endpoints"),
        ("GET", f"/webhook-endpoints/{endpoint_id}"),
        ("GET", f"/webhook-endpoints/{endpoint_id}/deliveries"),
        ("PATCH", f"/webhook-endpoints/{endpoint_id}"),
        ("GET", "/bank/connections"),
        ("GET", "/bank/transactions"),
    ]
    for method, path in paths:
        for _ in range(SWEEP_REQUESTS):
            body = {"description": "bench sweep"} if method == "PATCH" else None
            response = api.request(method, path, headers=auth, json=body)
            if response.status_code >= 400:
                raise RuntimeError(f"{method} {path} answered {response.status_code}: {response.text[:200]}")
    api.delete(f"/webhook-endpoints/{endpoint_id}", headers=auth).raise_for_status()


def route_budget(stack: RunningStack) -> dict[str, dict[str, Any]]:
    """Each route's latency budget per request as the gateway measures it (``GET /_local/routes``)."""
    routes = httpx.get(f"{stack.api_url}/_local/routes", timeout=10).json()
    keep = ("function", "requests", "request_p50_ms", "aws_p50_ms", "own_p50_ms")
    return {key: {name: row[name] for name in keep} for key, row in routes.items()}


def _delta(before: dict[str, Counter[str]], after: dict[str, Counter[str]], functions: list[str]) -> Counter[str]:
    total: Counter[str] = Counter()
    for name in functions:
        total.update(after.get(name, Counter()))
        total.subtract(before.get(name, Counter()))
    return +total


def on_the_stack(runs: int, requests: int) -> dict[str, Any]:
    stack = RunningStack(Path(tempfile.mkdtemp(prefix="payrail-bench-")), parameters=STACK_PARAMETERS)
    try:
        api = httpx.Client(base_url=stack.api_url, timeout=60)
        auth = {"Authorization": f"Bearer {sign_in(api, 'bench@example.com')}"}
        api.put(
            "/sandbox/payments/webhooks", json={"enabled": True, "delay_seconds": 0, "failure_rate": 0, "scheme": "standard"}
        ).raise_for_status()
        payouts.fund(api, auth, {"ZAR": 10**12})  # far more than every payout of the run
        for _ in range(3):  # warm every function on the path
            payouts.create(api, auth, payouts.body(100, "warm-up"))
        time.sleep(3)
        results: dict[str, Any] = {}

        # Create → paid, zero sandbox delay, one at a time.
        latencies = []
        for index in range(max(10, requests // 10)):
            started = time.perf_counter()
            payout_id = payouts.create(api, auth, payouts.body(1000 + index, f"latency {index}")).json()["id"]
            while api.get(f"/payouts/{payout_id}", headers=auth).json()["status"] not in payouts.FINAL:
                time.sleep(0.02)
            latencies.append(time.perf_counter() - started)
        results["create_to_paid_ms"] = {
            "p50": round(http_load.percentile(latencies, 0.5) * 1000),
            "p95": round(http_load.percentile(latencies, 0.95) * 1000),
            "n": len(latencies),
        }

        # AWS calls per payout lifecycle and per applied webhook, counted inside the functions.
        before = _function_calls(stack)
        batch = [payouts.create(api, auth, payouts.body(2000 + i, f"calls {i}")).json()["id"] for i in range(20)]
        payouts.watch(lambda: payouts.statuses(api, auth), set(batch), 120)
        time.sleep(2)
        after = _function_calls(stack)
        product = [name for name in after if not name.startswith("Sandbox")]
        webhook = _delta(before, after, ["WebhookReceiveFunction", "PaymentEventsWorkerFunction"])
        invocations = webhook.pop("invocations", 0)
        lifecycle = _delta(before, after, product)
        results["invocations_per_payout"] = round(lifecycle.pop("invocations", 0) / len(batch), 2)
        results["per_payout_operations"] = {op: round(n / len(batch), 2) for op, n in sorted(lifecycle.items())}
        results["webhook_invocations"] = invocations
        results["webhook_applied_calls"] = round(sum(webhook.values()) / (2 * len(batch)), 2)
        results["webhook_operations"] = {op: round(n / (2 * len(batch)), 2) for op, n in sorted(webhook.items())}
        # Where the time of those payouts went, function by function (before the load levels,
        # whose queueing would blur it).
        results["latency_budget"] = latency_budget(stack)
        sweep_routes(api, auth, batch[0])
        results["route_budget"] = route_budget(stack)

        # Throughput and latency over HTTP, creates against GET /health, same levels, same run.
        def create(client: httpx.Client, index: int) -> httpx.Response:
            return client.post(
                "/payouts", json=payouts.body(3000 + index, f"load {index}"), headers={**auth, "Idempotency-Key": str(uuid.uuid4())}
            )

        def health(client: httpx.Client, _: int) -> httpx.Response:
            return client.get("/health")

        load: dict[str, Any] = {}
        limits: list[dict[str, Any]] = []
        for concurrency in (1, 8, 32):
            level: dict[str, list[http_load.LoadResult]] = {"create": [], "health": []}
            for _ in range(runs):
                level["create"].append(http_load.run(stack.api_url, create, concurrency, requests, max_seconds=60))
                level["health"].append(http_load.run(stack.api_url, health, concurrency, requests, max_seconds=60))
                if concurrency == LIMIT_CLIENTS:  # moto's own rate for the same calls, alternately
                    limits.append(moto_limit(stack, requests))
            load[str(concurrency)] = {name: http_load.median_of(values) for name, values in level.items()}
        results["load"] = {
            level: {
                name: {
                    "per_second": round(r.per_second, 1),
                    "p50_ms": r.p50_ms,
                    "p99_ms": r.p99_ms,
                    "errors": r.errors,
                    "requests": r.requests,
                }
                for name, r in figures.items()
            }
            for level, figures in load.items()
        }
        limit = statistics.median(run["per_second"] for run in limits)
        results["moto_limit"] = {
            "clients": LIMIT_CLIENTS,
            "moto_creates_per_second": round(limit, 1),
            "stack_creates_per_second": results["load"][str(LIMIT_CLIENTS)]["create"]["per_second"],
            "ratio": round(results["load"][str(LIMIT_CLIENTS)]["create"]["per_second"] / limit, 2) if limit else 0.0,
            "runs": limits,
        }
        return results
    finally:
        stack.stop()


def cost_per_million(
    per_payout_operations: dict[str, float], invocations_per_payout: float, gb_seconds_per_invocation: float
) -> dict[str, float]:
    """Dollars per million payouts, each carried through creation, submission and two webhooks."""
    writes = reads = sqs = secrets = 0.0
    for operation, count in per_payout_operations.items():
        service, name = operation.split(":")
        if service == "dynamodb":
            if name == "TransactWriteItems":
                writes += count * 2 * 3  # transactional writes cost 2 units per item; about 3 items each
            elif name in ("PutItem", "UpdateItem", "DeleteItem"):
                writes += count
            else:
                reads += count
        elif service == "sqs":
            sqs += count
        elif service == "secretsmanager":
            secrets += count
    sqs += 2 * 3  # the event source mappings' receive and delete for the 3 messages a payout causes
    api_requests = 3  # the create and the two webhook deliveries
    million = 1_000_000
    dollars = {
        "api_gateway": api_requests * PRICES["api_gateway_http_per_million_requests"],
        "lambda_requests": invocations_per_payout * PRICES["lambda_per_million_requests"],
        "lambda_compute": invocations_per_payout * gb_seconds_per_invocation * PRICES["lambda_arm64_per_gb_second"] * million,
        "dynamodb": writes * PRICES["dynamodb_per_million_write_units"] + reads * PRICES["dynamodb_per_million_read_units"],
        "sqs": sqs * PRICES["sqs_per_million_requests"],
        "secrets_manager": secrets * PRICES["secrets_manager_per_10k_calls"] * 100,
    }
    dollars["total"] = sum(dollars.values())
    return {name: round(value, 2) for name, value in dollars.items()}


def hot_balance_section(hot: dict[str, Any]) -> list[str]:
    return [
        f"## One user's balance is a hot key ({hot['clients']} clients)",
        "",
        "| creates of | per second | errors | p99 ms |",
        "| --- | --- | --- | --- |",
        f"| one user (one balance item) | {hot['one_user']['per_second']} | {hot['one_user']['errors']} | {hot['one_user']['p99_ms']} |",
        f"| 16 users | {hot['sixteen_users']['per_second']} | {hot['sixteen_users']['errors']} | {hot['sixteen_users']['p99_ms']} |",
        "",
        f"Ratio one user / 16 users: {hot['ratio_one_to_sixteen']}. moto never answers TransactionConflict, so locally "
        "this is the product's own cost of the shared item; on DynamoDB one balance item serialises its "
        "transactions (about one transaction latency each, 40-100 creates/s per user and currency), and a "
        "balance sharded into N sub-balances would lift that N-fold at the cost of a reserve that may have to "
        "try a second shard (an extra round trip when the chosen one is short) and an audit over N items.",
    ]


def table_growth_section(growth: dict[str, Any]) -> list[str]:
    lines = [
        "## Speed as the table grows (`python -m bench.table_growth`; target ≤ 1.3)",
        "",
        "`GET /payouts`, one user's first page of 10 (of 12) newest first, one client, over HTTP; the table topped up with other users' payouts.",
        "",
        "| items in the table | p50 ms | p95 ms | PayoutsApiFunction AWS ms / own ms (mean) |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {row['items_in_table']:,} | {row['p50_ms']} | {row['p95_ms']} | {row['aws_ms_mean']} / {row['own_ms_mean']} |"
        for size, row in growth.items()
        if size != "ratio_p50"
    ]
    return [*lines, "", f"p50 with the large table ÷ with 100 items: **{growth['ratio_p50']}**.", ""]


def _worst_own(rows: dict[str, dict[str, Any]], count: str) -> tuple[str, dict[str, Any]]:
    """The row with the highest own-time p50 among those with at least ``SWEEP_REQUESTS`` samples:
    one request or invocation (signing in) lands on a fresh instance, whose first is slow, and a p50
    cannot stand for it (the tables show those too)."""
    return max(((name, row) for name, row in rows.items() if row[count] >= SWEEP_REQUESTS), key=lambda item: item[1]["own_p50_ms"])


def _worst_own_time(results: dict[str, Any]) -> str:
    name, row = _worst_own(results["stack"]["latency_budget"], "invocations")
    return f"{row['own_p50_ms']} ms ({name})"


def _worst_route_own_time(results: dict[str, Any]) -> str:
    # The product's routes, without the sandbox's stand-ins for outside parties.
    routes = {key: row for key, row in results["stack"]["route_budget"].items() if row["function"] != "SandboxFunction"}
    key, row = _worst_own(routes, "requests")
    return f"{row['own_p50_ms']} ms (`{key}`)"


def _worst_cold_start(results: dict[str, Any]) -> str:
    row = max((r for r in results["cold_start"]["rows"] if r["function"] != "floor"), key=lambda r: r["ratio_to_floor"])
    return f"{row['ratio_to_floor']} ({row['function']})"


def _large_sync(results: dict[str, Any]) -> str:
    first = results["sync"]["10000x100"]["first_sync"]
    bare = f", {first['wall_to_bare_moto']}x the bare moto calls" if "wall_to_bare_moto" in first else ""
    return f"{first['transactions_per_second']} tx/s{bare}"


# The speed targets, each read from this run's figures and from the previous run's BENCHMARKS.json.
TARGETS: list[tuple[str, Any, str]] = [
    (
        f"own time per API request (gateway + runtime + handler), p50, worst route of ≥ {SWEEP_REQUESTS} requests",
        _worst_route_own_time,
        "≤ 10 ms",
    ),
    (
        f"own time per invocation (runtime + handler, outbound HTTP included), p50, worst function of ≥ {SWEEP_REQUESTS} invocations",
        _worst_own_time,
        "≤ 10 ms",
    ),
    ("`GET /payouts` p50, 50,000 items in the table ÷ 100 items", lambda r: r["table_growth"]["ratio_p50"], "≤ 1.3"),
    (
        f"creates/s through the stack ÷ moto's rate for the same calls, {LIMIT_CLIENTS} clients",
        lambda r: r["stack"]["moto_limit"]["ratio"],
        "≥ 0.5",
    ),
    ("create → `paid`, zero sandbox delay, p50", lambda r: f"{r['stack']['create_to_paid_ms']['p50']} ms", "≤ 200 ms"),
    ("bank sync, 10,000 transactions, page 100, end to end", _large_sync, "≥ 3,500 tx/s, ≤ 1.5x the bare moto calls"),
    ("cold start ÷ floor, worst function", _worst_cold_start, "≤ 1.2"),
]


def targets_section(results: dict[str, Any], previous: dict[str, Any]) -> list[str]:
    """One row per speed target: this run's figure beside the previous run's (``—`` where that run
    did not measure it)."""

    def read(figures: dict[str, Any], figure: Any) -> str:
        try:
            return str(figure(figures))
        except (KeyError, TypeError, ValueError):  # a figure the run did not measure
            return "—"

    lines = ["## Speed targets (this run beside the previous one)", "", "| figure | previous | now | target |", "| --- | --- | --- | --- |"]
    lines += [f"| {label} | {read(previous, figure)} | {read(results, figure)} | {target} |" for label, figure, target in TARGETS]
    return [*lines, ""]


def render(results: dict[str, Any], command: str, seconds: float, previous: dict[str, Any] | None = None) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} on {platform.machine()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}), a shared machine, by `{command}` in {seconds / 60:.1f} min.",
        "Every figure is a median of several runs; every comparison was measured alternately in this same run.",
        "The local stack is moto behind the Docker-free runtime: absolute latencies include moto and",
        "Python's HTTP server; the ratios and call counts carry over to AWS.",
        "",
        *targets_section(results, previous or {}),
        "## AWS API calls per operation (target: 2 per new payout, 1 per replay)",
        "",
        "| operation | calls | how |",
        "| --- | --- | --- |",
    ]
    create = results["create_calls"]
    lines += [
        f"| payout create: {name.replace('_', ' ')} | {value:g} | botocore hook, handler in-process, warm |"
        for name, value in create.items()
    ]
    stack = results["stack"]
    lines.append(
        f"| webhook applied (receive + events worker) | {stack['webhook_applied_calls']:g} | counted inside the functions on the local stack: {stack['webhook_operations']} |"
    )
    for label, run in (("bank sync per 1,000 transactions (page 100)", results["sync"]["1000x100"]),):
        lines.append(
            f"| {label} | {run['first_sync']['aws_calls_per_1000_transactions']:g} | target ≤ 60; {run['first_sync']['aws_calls_by_operation']} |"
        )
    resync = results["sync"]["1000x100"]["unchanged_resync_from_cursor"]
    lines.append(
        f"| bank re-sync, unchanged: transactions written | {resync['transactions_written']} | {resync['aws_calls']} calls in all (target 0 writes) |"
    )
    webhooks = results.get("webhook_delivery")
    if webhooks:
        lines.append(
            f"| merchant webhook event delivered (fan-out + delivery worker) | {webhooks['aws_calls_per_delivered_event']:g} | counted inside the functions on the local stack: {webhooks['aws_operations_per_delivered_event']} |"
        )
    if "hot_balance" in results:
        lines += ["", *hot_balance_section(results["hot_balance"])]
    lines += [
        "",
        "Per payout, from creation to `paid` (all functions, counted on the local stack):",
        "",
        "```",
        json.dumps(stack["per_payout_operations"], indent=1),
        "```",
        "",
    ]

    cold = results["cold_start"]
    lines += [
        "## Cold start against the floor (target ≤ 1.3x)",
        "",
        f"Floor: a fresh interpreter importing boto3, pydantic and Powertools and creating one client: {cold['floor_ms']} ms (median of {cold['runs']}).",
        "",
        "| function | median ms | x floor |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {row['function']} | {row['median_ms']} | {row['ratio_to_floor']} |" for row in cold["rows"] if row["function"] != "floor"]

    lines += [
        "",
        "## Throughput and latency over HTTP on the local stack",
        "",
        "| clients | creates/s | create p50 / p99 ms | health/s | health p50 / p99 ms | create ÷ health throughput |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for level, figures in stack["load"].items():
        create_level, health = figures["create"], figures["health"]
        ratio = create_level["per_second"] / health["per_second"] if health["per_second"] else 0
        lines.append(
            f"| {level} | {create_level['per_second']} | {create_level['p50_ms']} / {create_level['p99_ms']} | {health['per_second']} | {health['p50_ms']} / {health['p99_ms']} | {ratio:.2f} |"
        )
    limit = stack["moto_limit"]
    lines += [
        "",
        f"Creates through the stack at {limit['clients']} clients ÷ moto answering the same calls directly (one `TransactWriteItems`",
        "built by the create's own data-access code and one `SendMessage`, no gateway, no function, no IAM check; `bench/moto_limit.py`):",
        f"{limit['stack_creates_per_second']} ÷ {limit['moto_creates_per_second']} per second = **{limit['ratio']}** (target ≥ 0.5).",
    ]
    latency = stack["create_to_paid_ms"]
    lines += [
        "",
        f"Create → `paid` with zero sandbox delay: p50 **{latency['p50']} ms**, p95 {latency['p95']} ms ({latency['n']} payouts, one at a time; target p50 < 1 s).",
        "",
    ]
    lines += [
        "## Latency budget per function (AWS time and own time, as `GET /_local/functions` reports them)",
        "",
        "After the payouts above were carried to `paid`, one at a time: p50 per invocation over each function's recent invocations.",
        "*AWS time* is the wall time inside the function's AWS calls (botocore, the runtime's IAM check, moto's answer);",
        "*own time* is the rest of the invocation as the runtime measures it: the handler's own work and the runtime around it",
        "(the gateway's parsing in front of an HTTP function is not in it).",
        "",
        "| function | invocations | duration p50 ms | AWS p50 ms | own p50 ms | AWS share of total time |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {name} | {row['invocations']} | {row['duration_p50_ms']} | {row['aws_p50_ms']} | {row['own_p50_ms']} | {row['aws_share']:.0%} |"
        for name, row in stack.get("latency_budget", {}).items()
    ]
    lines.append("")
    if "route_budget" in stack:
        lines += [
            "## Latency budget per API route (as `GET /_local/routes` reports it)",
            "",
            f"Every route the run called: the payouts' path above, then each route a signed-in client can repeat, {SWEEP_REQUESTS} times, one",
            "at a time. Per request, as the gateway times it from the body read to the answer written: *own time* is everything",
            "but the function's AWS calls (the gateway's parsing and answer, the runtime, the handler). Sandbox routes stand in for",
            "outside parties and are not the product's.",
            "",
            "| route | function | requests | request p50 ms | AWS p50 ms | own p50 ms |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| `{key}` | {row['function']} | {row['requests']} | {row['request_p50_ms']} | {row['aws_p50_ms']} | {row['own_p50_ms']} |"
            for key, row in stack["route_budget"].items()
        ]
        lines.append("")

    lines += [
        "## Bank sync throughput (in-process on moto; target 3,500 transactions/s at page size 100)",
        "",
        "| transactions | page size | transactions/s | worker only/s | AWS calls per 1,000 | unchanged re-sync writes |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for run in results["sync"].values():
        first = run["first_sync"]
        lines.append(
            f"| {run['transactions']} | {run['page_size']} | {first['transactions_per_second']} | {first['worker_only_transactions_per_second']} | {first['aws_calls_per_1000_transactions']} | {run['unchanged_resync_from_cursor']['transactions_written']} |"
        )
    lines += [
        "",
        '"Worker only" excludes the time spent inside the in-process sandbox bank.',
        "",
    ]

    if "webhook_delivery" in results:
        lines += webhook_delivery.render(results["webhook_delivery"])
    if "table_growth" in results:
        lines += table_growth_section(results["table_growth"])

    cost = results["cost"]
    lines += [
        "## Cost per million payouts on AWS (estimate)",
        "",
        "From the call counts above and public on-demand list prices for us-east-1 read on 2025-06-01: "
        + ", ".join(f"{k} ${v}" for k, v in PRICES.items())
        + ".",
        "Assumptions: each payout causes 3 API requests (create, two webhooks), the measured invocations, 512 MB x the measured warm p50, transactions of ~3 items.",
        "",
        "| item | USD per million payouts |",
        "| --- | --- |",
    ]
    lines += [f"| {name.replace('_', ' ')} | {value:,.2f} |" for name, value in cost.items()]
    if "layers" in results:
        lines += ["", *layer_size.render(results["layers"])[:-1]]
    return "\n".join(lines) + "\n"


# The pieces ``--only`` can measure alone: each runs on a stack of its own and has a section of its own.
PIECES: dict[str, tuple[Any, Any]] = {
    "webhook_delivery": (lambda args: webhook_delivery.measure(args.webhook_payouts), webhook_delivery.render),
    "hot_balance": (lambda args: hot_balance.run_on_a_stack(args.requests, args.runs, max_seconds=60), hot_balance_section),
    "table_growth": (lambda args: table_growth.measure(50_000, max(30, args.requests // 4)), table_growth_section),
}


def _heading_key(line: str) -> str:
    """A section's heading without its parenthesis (which may carry figures)."""
    return line.split(" (", 1)[0].strip()


def splice(document: str, section: list[str]) -> str:
    """``document`` with the section of the same heading as ``section`` replaced by it (or, when it
    has none, ``section`` added before the cost estimate, which reads the figures above it)."""
    lines = document.rstrip("\n").split("\n")
    key = _heading_key(section[0])
    body = [*section] if section[-1] == "" else [*section, ""]
    starts = [i for i, line in enumerate(lines) if line.startswith("## ")]
    for position, start in enumerate(starts):
        if _heading_key(lines[start]) == key:
            end = starts[position + 1] if position + 1 < len(starts) else len(lines)
            return "\n".join([*lines[:start], *body, *lines[end:]]).rstrip("\n") + "\n"
    cost = next((i for i in starts if lines[i].startswith("## Cost per million")), len(lines))
    if cost == len(lines):
        body = ["", *body]
    return "\n".join([*lines[:cost], *body, *lines[cost:]]).rstrip("\n") + "\n"


def only(names: list[str], args: argparse.Namespace) -> int:
    """Measure ``names`` alone and put their sections into the existing document and figures."""
    figures_path = args.output.with_suffix(".json")
    results: dict[str, Any] = json.loads(figures_path.read_text()) if figures_path.exists() else {}
    document = args.output.read_text() if args.output.exists() else "# Benchmarks\n"
    for name in names:
        measure, section = PIECES[name]
        print(f"bench: {name} alone …", flush=True)
        started = time.monotonic()
        results[name] = measure(args)
        lines = section(results[name])
        provenance = (
            f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} on {platform.machine()} ({os.cpu_count()} cores), a shared machine, "
            f"by `python -m bench.run --only {name}` in {(time.monotonic() - started) / 60:.1f} min, apart from the rest of this file."
        )
        document = splice(document, [lines[0], "", provenance, *lines[1:]])
        print("\n".join(lines), flush=True)
    args.output.write_text(document)
    figures_path.write_text(json.dumps(results, indent=2, default=str))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (medians)")
    parser.add_argument("--requests", type=int, default=200, help="requests per load level and run")
    parser.add_argument("--large-sync", type=int, default=10_000, help="transactions of the large sync (0 skips it)")
    parser.add_argument("--webhook-payouts", type=int, default=30, help="payouts whose merchant events are timed")
    parser.add_argument("--only", action="append", choices=sorted(PIECES), help="measure only this piece (repeatable); see above")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    if args.only:
        return only(args.only, args)
    started = time.monotonic()
    command = "make bench"
    results: dict[str, Any] = {}
    print("bench: AWS calls per create …", flush=True)
    results["create_calls"] = create_calls(args.runs)
    print("bench: cold starts …", flush=True)
    results["cold_start"] = cold_start.measure(runs=max(5, args.runs * 2))
    print("bench: the local stack (latency, calls, load) …", flush=True)
    results["stack"] = on_the_stack(args.runs, args.requests)
    print("bench: creates/s of one user (one balance item) against 16 users, 16 clients …", flush=True)
    results["hot_balance"] = PIECES["hot_balance"][0](args)
    print(f"bench: merchant webhook delivery latency and calls, {args.webhook_payouts} payouts …", flush=True)
    results["webhook_delivery"] = PIECES["webhook_delivery"][0](args)
    print("bench: GET /payouts with 100 and 50,000 items in the table …", flush=True)
    results["table_growth"] = PIECES["table_growth"][0](args)
    results["sync"] = {}
    sizes = [(1000, 100), (1000, 500)] + ([(args.large_sync, 100), (args.large_sync, 500)] if args.large_sync else [])
    for transactions, page_size in sizes:
        print(f"bench: bank sync {transactions} at page size {page_size} …", flush=True)
        runs = [bank_sync(transactions, page_size) for _ in range(args.runs if transactions <= 1000 else 1)]
        results["sync"][f"{transactions}x{page_size}"] = sorted(runs, key=lambda r: r["first_sync"]["transactions_per_second"])[
            len(runs) // 2
        ]
    warm_seconds = results["stack"]["load"]["1"]["create"]["p50_ms"] / 1000
    results["cost"] = cost_per_million(
        results["stack"]["per_payout_operations"], results["stack"]["invocations_per_payout"], 0.5 * warm_seconds
    )
    print("bench: layer sizes (make build) …", flush=True)
    subprocess.run(["make", "build"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)  # noqa: S607 - the project's own build
    results["layers"] = layer_size.measure()
    figures = args.output.with_suffix(".json")
    previous = json.loads(figures.read_text()) if figures.exists() else {}
    document = render(results, command, time.monotonic() - started, previous)
    args.output.write_text(document)
    figures.write_text(json.dumps(results, indent=2, default=str))
    print(document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
