"""Benchmark: sync 10,000 bank transactions at page size 100, in-process on moto.

What runs: a moto server on loopback, adapted as the local runtime adapts it
(devstack/moto_dynamodb.py), with template.yaml's resources provisioned by devstack;
the bank API, the sandbox bank and the sync worker loaded in this process with their template
environment (as tests/integration does), HTTP between them routed by devstack.inprocess. A
sandbox user is linked through the real OAuth flow, topped up to N transactions, and synced by
one worker invocation. Then the unchanged connection is synced twice more: once from its stored
cursor (the normal delta run) and once from an empty cursor (a full replay of all history).

What it reports: transactions per second of the first sync (bank and worker share the process,
so this is a floor, not a Lambda figure), the worker's AWS calls per 1,000 transactions counted
with a botocore ``before-call`` hook (the sandbox bank's own table calls are excluded), how many
transactions each unchanged re-sync wrote (target 0), and the first sync's wall time against the
time spent inside every AWS call it made, the sandbox bank's included (botocore and moto's answer:
the floor moto sets, measured as the local runtime measures a function's AWS time).

    make bench-bank            # or: python bench/bank_sync.py --transactions 10000 --page-size 100
"""

from __future__ import annotations

import argparse
import contextvars
import json
import logging
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT / "sandbox" / "layer"), str(ROOT)]

import httpx  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from devstack.events import sqs_record  # noqa: E402
from devstack.functions import function_environment  # noqa: E402
from devstack.inprocess import InProcessApi, LocalContext, load_module  # noqa: E402
from devstack.lambda_bootstrap import AwsCalls  # noqa: E402
from devstack.moto_dynamodb import adapt_moto_dynamodb  # noqa: E402
from devstack.moto_overheads import trim_moto_overheads  # noqa: E402
from devstack.resources import Provisioner  # noqa: E402
from devstack.stack import free_port, template_parameters  # noqa: E402
from devstack.template import Template  # noqa: E402

FUNCTIONS = ("SandboxFunction", "BankApiFunction", "BankSyncWorkerFunction")
BASE = "http://127.0.0.1:3000"
_in_sandbox: contextvars.ContextVar[bool] = contextvars.ContextVar("in_sandbox", default=False)


class CallCounter:
    """Counts the worker's AWS API calls by service and operation (not the sandbox bank's)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, model: Any, **_: Any) -> None:
        if not _in_sandbox.get():
            self.calls[f"{model.service_model.service_name}:{model.name}"] += 1

    def reset(self) -> Counter[str]:
        taken, self.calls = self.calls, Counter()
        return taken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=100)
    arguments = parser.parse_args()
    logging.disable(logging.INFO)  # a per-page INFO line is not what is being measured

    adapt_moto_dynamodb()  # moto as the local runtime runs it
    trim_moto_overheads()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        template_path = ROOT / "template.yaml"
        template = Template(template_path, template_parameters(template_path, "dev", {"BankSyncPageSize": str(arguments.page_size)}))
        provisioner = Provisioner(template, endpoint, BASE)
        provisioner.provision_all()
        functions = template.functions()
        environment: dict[str, str] = {}
        for logical_id in FUNCTIONS:
            environment.update(function_environment(functions[logical_id], provisioner.ref(logical_id), endpoint))
        environment["POWERTOOLS_METRICS_DISABLED"] = "true"
        environment["POWERTOOLS_TRACE_DISABLED"] = "true"
        os.environ.clear()
        os.environ.update(environment)
        handlers = {name: load_module(functions[name].handler_file, f"bench_{name}").lambda_handler for name in FUNCTIONS}
        sandbox_handler = handlers["SandboxFunction"]

        bank_seconds = [0.0]

        def sandbox(event: dict[str, Any], context: Any) -> Any:
            token = _in_sandbox.set(True)
            began = time.perf_counter()
            try:
                return sandbox_handler(event, context)
            finally:
                bank_seconds[0] += time.perf_counter() - began
                _in_sandbox.reset(token)

        from payrail import aws
        from payrail.auth.tokens import issue_access_token
        from payrail.bank import provider
        from payrail.db import bank as store
        from payrail.settings import SignedInSettings
        from payrail_sandbox import bank_store as sandbox_bank

        transport = InProcessApi(functions, {"SandboxFunction": sandbox, "BankApiFunction": handlers["BankApiFunction"]})
        provider.TRANSPORT = transport
        counter, in_calls = CallCounter(), AwsCalls()
        for service in ("dynamodb", "kms", "sqs"):
            aws.client(service).meta.events.register("before-call", counter)
        in_calls.install()

        # Link a sandbox user through the OAuth flow, then top it up to N transactions.
        user_id, login = "bench-" + uuid.uuid4().hex[:6], f"bench-{uuid.uuid4().hex[:6]}@bank.example"
        http = httpx.Client(transport=transport, base_url=BASE)
        signed_in = SignedInSettings.model_validate(environment)
        auth = {"Authorization": f"Bearer {issue_access_token(signed_in, user_id, 'bench')}"}
        start = http.get("/bank/connect", params={"login_hint": login}, headers=auth)
        binding = next(c for c in start.headers.get_list("set-cookie") if c.startswith("__Secure-payrail_oauth=")).split(";")[0]
        callback = http.get(start.headers["location"]).headers["location"]
        connection_id = http.get(callback, headers={"Accept": "application/json", "Cookie": binding}).json()["id"]
        seeding_started = time.perf_counter()
        token = _in_sandbox.set(True)
        sandbox_bank.add_transactions(login, arguments.transactions - sandbox_bank.count_transactions(login))
        _in_sandbox.reset(token)
        seeded_in = time.perf_counter() - seeding_started

        bank_time: list[float] = []
        queue_arn = f"arn:aws:sqs:us-east-1:123456789012:{provisioner.ref('BankSyncQueue').rsplit('/', 1)[-1]}"

        def run_worker() -> tuple[dict[str, Any], float, Counter[str]]:
            counter.reset()
            bank_seconds[0] = 0.0
            message = {
                "MessageId": str(uuid.uuid4()),
                "ReceiptHandle": "bench",
                "Body": json.dumps({"connection_id": connection_id}),
                "Attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "0",
                    "SenderId": "bench",
                    "ApproximateFirstReceiveTimestamp": "0",
                },
            }
            record = sqs_record(message, queue_arn)
            began = time.perf_counter()
            answer = handlers["BankSyncWorkerFunction"]({"Records": [record]}, LocalContext("bench", 900_000))
            elapsed = time.perf_counter() - began
            bank_time.append(bank_seconds[0])
            assert answer == {"batchItemFailures": []}, answer
            calls = counter.reset()
            connection = store.get_connection(connection_id)
            assert connection is not None
            return dict(connection.last_sync or {}), elapsed, calls

        in_calls.clear()
        first, first_seconds, first_calls = run_worker()
        moto_seconds, moto_calls = in_calls.seconds, sum(in_calls.calls.values())
        delta, delta_seconds, delta_calls = run_worker()
        aws.client("dynamodb").update_item(
            TableName=environment["TABLE_NAME"],
            Key={"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": "CONN"}},
            UpdateExpression="SET sync_cursor = :empty",
            ExpressionAttributeValues={":empty": {"S": ""}},
        )
        counter.reset()
        replay, replay_seconds, replay_calls = run_worker()

        def per_thousand(calls: Counter[str]) -> float:
            return round(sum(calls.values()) * 1000 / arguments.transactions, 1)

        def writes(calls: Counter[str]) -> int:
            return sum(
                n for name, n in calls.items() if name.split(":")[1] in {"BatchWriteItem", "PutItem", "DeleteItem", "TransactWriteItems"}
            )

        report = {
            "mode": "in-process on moto (worker, bank API and sandbox bank in one process; HTTP via devstack.inprocess)",
            "transactions": arguments.transactions,
            "page_size": arguments.page_size,
            "seeding_seconds": round(seeded_in, 1),
            "first_sync": {
                "summary": {k: first[k] for k in ("inserted", "updated", "unchanged", "removed", "pages", "written")},
                "seconds": round(first_seconds, 2),
                "transactions_per_second": round(arguments.transactions / first_seconds, 1),
                "sandbox_bank_seconds_within": round(bank_time[0], 2),
                "worker_only_transactions_per_second": round(arguments.transactions / (first_seconds - bank_time[0]), 1),
                "moto_calls": moto_calls,
                "moto_seconds": round(moto_seconds, 2),
                "wall_to_bare_moto": round(first_seconds / moto_seconds, 2),
                "aws_calls": sum(first_calls.values()),
                "aws_calls_per_1000_transactions": per_thousand(first_calls),
                "aws_calls_by_operation": dict(sorted(first_calls.items())),
            },
            "unchanged_resync_from_cursor": {
                "summary": {k: delta[k] for k in ("inserted", "updated", "unchanged", "removed", "pages", "written")},
                "seconds": round(delta_seconds, 2),
                "transactions_written": delta["written"],
                "aws_calls": sum(delta_calls.values()),
                "aws_calls_by_operation": dict(sorted(delta_calls.items())),
            },
            "unchanged_full_replay": {
                "summary": {k: replay[k] for k in ("inserted", "updated", "unchanged", "removed", "pages", "written")},
                "seconds": round(replay_seconds, 2),
                "sandbox_bank_seconds_within": round(bank_time[2], 2),
                "transactions_written": replay["written"],
                "table_write_calls_for_transactions": writes(replay_calls),
                "aws_calls_per_1000_transactions": per_thousand(replay_calls),
                "aws_calls_by_operation": dict(sorted(replay_calls.items())),
            },
        }
        print(json.dumps(report, indent=2))
        print(
            f"\nfirst sync: {arguments.transactions} transactions in {first_seconds:.1f} s = "
            f"{arguments.transactions / first_seconds:.0f}/s ({arguments.transactions / (first_seconds - bank_time[0]):.0f}/s "
            f"excluding the {bank_time[0]:.0f} s spent in the in-process sandbox bank), "
            f"{first_seconds / moto_seconds:.2f}x the {moto_seconds:.1f} s spent inside its {moto_calls} AWS calls, "
            f"{per_thousand(first_calls)} AWS calls per 1,000 (target <= 60); "
            f"unchanged re-sync wrote {delta['written']} (from cursor) and {replay['written']} (full replay) transactions (target 0)"
        )
        ok = (
            per_thousand(first_calls) <= 60
            and delta["written"] == 0
            and replay["written"] == 0
            and first["inserted"] == arguments.transactions
        )
        return 0 if ok else 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
