"""bench.moto_limit: the creates it drives are the create's real calls, and they stay off the stack's own table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from boto3.dynamodb.types import TypeDeserializer

from tests.support import Resources

ROOT = Path(__file__).resolve().parents[2]


def test_moto_limit_writes_whole_creates_to_a_scratch_copy_of_the_table(resources: Resources) -> None:
    table = resources.ref("Table")
    run = subprocess.run(
        [sys.executable, "-m", "bench.moto_limit", "--moto", resources.endpoint, "--table", table, "--clients", "2", "--requests", "10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["failures"] == 0
    assert result["per_second"] > 0
    dynamodb = resources.client("dynamodb")
    assert dynamodb.scan(TableName=table, Select="COUNT")["Count"] == 0
    deserialize = TypeDeserializer().deserialize
    items = [{k: deserialize(v) for k, v in item.items()} for item in dynamodb.scan(TableName=result["table"])["Items"]]
    # Three warm-up creates and ten measured ones, each with its idempotency record, payout,
    # outbox marker, reserve entry and its share of the one balance and rate-limit window.
    payouts = [item for item in items if str(item["pk"]).startswith("PAYOUT#")]
    assert len(payouts) == 13
    assert {item["status"] for item in payouts} == {"pending"}
    assert sum(str(item["pk"]).startswith("IDEM#") for item in items) == 13
    (balance,) = [item for item in items if str(item["pk"]).startswith("BALANCE#")]
    assert balance["reserved"] == 13 * 1000
    assert sum(item.get("type") == "reserve" for item in items if str(item["pk"]).startswith("LEDGER#")) == 13
