"""bench.webhook_delivery: its figures from what a loopback receiver recorded, and bench.run's
``--only`` putting that section into an existing BENCHMARKS.md."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from bench import run, webhook_delivery
from scenarios.receiver import Recorder, every_event_delivered


def _event(payout_id: str, kind: str, version: int, seconds_ago: float) -> dict[str, object]:
    created = datetime.fromtimestamp(time.time() - seconds_ago, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    view = {"id": payout_id, "version": version}
    return {"id": f"evt_{payout_id}_{version}", "type": kind, "created_at": created, "data": {"object": view}}


@pytest.fixture
def receiver() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.stop()


def _post(receiver: Recorder, event: dict[str, object]) -> int:
    body = json.dumps(event)
    return httpx.post(f"{receiver.url}/hooks", content=body, headers={"webhook-id": str(event["id"])}, timeout=5).status_code


def test_figures_time_each_event_from_its_created_at_to_the_receivers_2xx_once_per_event(receiver: Recorder) -> None:
    receiver.codes = [500]  # the first attempt of payout.created fails and is retried
    lifecycle = [("payout.created", 1), ("payout.submitted", 2), ("payout.paid", 3)]
    assert _post(receiver, _event("po_a", "payout.created", 1, 0.2)) == 500
    assert not every_event_delivered(receiver.posts(), {"po_a"})
    for kind, version in lifecycle:
        assert _post(receiver, _event("po_a", kind, version, 0.2)) == 202
    assert _post(receiver, _event("po_other", "payout.created", 1, 0.2)) == 202  # another payout's: not counted
    assert every_event_delivered(receiver.posts(), {"po_a"})
    assert not every_event_delivered(receiver.posts(), {"po_a", "po_other"})  # po_other has no final event

    before = Counter({"dynamodb:PutItem": 10, "invocations": 5})
    after = Counter({"dynamodb:PutItem": 16, "sqs:SendMessage": 3, "invocations": 11})
    results = webhook_delivery.figures(receiver.posts(), {"po_a"}, before, after)

    assert (results["events_delivered"], results["posts_received"]) == (3, 4)
    assert results["aws_calls_per_delivered_event"] == 3.0  # (6 PutItem + 3 SendMessage) / 3 events
    assert results["aws_operations_per_delivered_event"] == {"dynamodb:PutItem": 2.0, "sqs:SendMessage": 1.0}
    assert results["invocations_per_delivered_event"] == 2.0
    assert results["latency"]["all"]["n"] == 3
    assert set(results["latency"]) == {"all", "payout.created", "payout.submitted", "payout.paid"}
    for row in results["latency"].values():
        assert 200 <= row["p50_ms"] <= row["p99_ms"] <= row["max_ms"] < 5000  # created 0.2 s before the POST


def test_only_puts_its_section_into_the_existing_document_and_keeps_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    figures = {
        "payouts": 2,
        "load_average": [1.0, 1.0, 1.0],
        "events_delivered": 8,
        "posts_received": 8,
        "latency": {"all": {"n": 8, "p50_ms": 120.0, "p99_ms": 300.0, "max_ms": 300.0}},
        "aws_calls_per_delivered_event": 9.0,
        "aws_operations_per_delivered_event": {"dynamodb:GetItem": 2.0},
        "invocations_per_delivered_event": 1.5,
    }
    monkeypatch.setitem(run.PIECES, "webhook_delivery", (lambda _args: figures, webhook_delivery.render))
    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# Benchmarks\n\n## Cold start (x)\n\nkept\n\n## Cost per million payouts\n\nalso kept\n")
    (tmp_path / "BENCHMARKS.json").write_text(json.dumps({"cold_start": {"floor_ms": 1}}))
    monkeypatch.setattr("sys.argv", ["bench.run", "--only", "webhook_delivery", "--output", str(output)])

    assert run.main() == 0
    assert run.main() == 0  # a second run replaces its section, it does not add another

    document = output.read_text()
    assert document.count("## Merchant webhook delivery") == 1
    assert document.index("## Cold start") < document.index("## Merchant webhook delivery") < document.index("## Cost per million")
    assert "\nkept\n" in document
    assert "\nalso kept\n" in document
    assert "| **all** | 8 | 120.0 | 300.0 | 300.0 |" in document
    assert "by `python -m bench.run --only webhook_delivery`" in document
    assert json.loads((tmp_path / "BENCHMARKS.json").read_text()) == {"cold_start": {"floor_ms": 1}, "webhook_delivery": figures}
