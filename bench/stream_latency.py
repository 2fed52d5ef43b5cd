"""Benchmark: how soon the local DynamoDB Streams event source hands a write to its function.

What runs: a local stack of the streams test template (tests/fixtures/runtime/streams.yaml, IAM
enforced, pollers running). After one warm-up write (the function's cold start), ``--writes``
PutItems, one at a time, each waited for. Reported: the p50 / p90 / max from PutItem returning
to the event source invoking the function, and to the function's own write being visible.

    python -m bench.stream_latency [--writes 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from devstack.stack import LocalStack, free_port

TEMPLATE = Path(__file__).resolve().parent.parent / "tests/fixtures/runtime/streams.yaml"


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[int(len(ordered) * 0.9)], 1),
        "max_ms": round(ordered[-1], 1),
    }


def measure(writes: int) -> dict[str, Any]:
    stack = LocalStack(
        TEMPLATE, api_port=free_port(), moto_port=free_port(), schedules=False, log=lambda _: None, stack_name="bench-streams"
    )
    stack.start()
    invoked: list[float] = []
    for poller in stack.stream_pollers:
        original = poller.invoke

        def timed(function: str, event: dict[str, Any], original: Any = original) -> Any:
            invoked.append(time.perf_counter())
            return original(function, event)

        poller.invoke = timed
    try:
        dynamodb, table, log = stack.client("dynamodb"), stack.physical("StreamTable"), stack.physical("LogTable")
        partition = {":pk": {"S": "batches#bench-streams-StreamConsumerFunction"}}

        def batches() -> int:
            answer = dynamodb.query(TableName=log, KeyConditionExpression="pk = :pk", Select="COUNT", ExpressionAttributeValues=partition)
            return int(answer["Count"])

        to_invoke, to_visible = [], []
        for index in range(writes + 1):
            seen, calls = batches(), len(invoked)
            written = time.perf_counter()
            dynamodb.put_item(TableName=table, Item={"pk": {"S": f"main#{index}"}, "sk": {"S": "x"}})
            while batches() == seen:
                time.sleep(0.0005)
            if index:  # the first one pays for the function's cold start
                to_invoke.append((invoked[calls] - written) * 1000)
                to_visible.append((time.perf_counter() - written) * 1000)
            time.sleep(0.05)
    finally:
        stack.stop()
    return {"writes": writes, "write_to_invocation": _summary(to_invoke), "write_to_handler_write_visible": _summary(to_visible)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.writes)
    if args.json:
        print(json.dumps(result))
        return
    for name in ("write_to_invocation", "write_to_handler_write_visible"):
        figures = result[name]
        print(f"{name.replace('_', ' ')}: p50 {figures['p50_ms']} ms, p90 {figures['p90_ms']} ms, max {figures['max_ms']} ms")


if __name__ == "__main__":
    main()
