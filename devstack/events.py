"""SQS and EventBridge event sources, as Lambda's pollers and EventBridge would drive them."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from devstack.chaos import Chaos
from devstack.template import ACCOUNT_ID, REGION, TemplateError

Invoke = Callable[..., Any]
Log = Callable[[str], None]

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """An SQS message as a Lambda event record."""
    attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes") or {},
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def _send_attributes(record: dict[str, Any]) -> dict[str, Any]:
    """A Lambda record's message attributes in SendMessage's form (for an injected duplicate)."""
    return {
        name: {"DataType": value["dataType"], "StringValue": value["stringValue"]}
        for name, value in record["messageAttributes"].items()
        if value.get("stringValue") is not None
    }


class SqsPoller(threading.Thread):
    """Lambda's SQS event source mapping: receive a batch, invoke, delete what succeeded.

    With ``ReportBatchItemFailures`` only the records the function names as failed stay on the
    queue; without it, or when the invocation fails, the whole batch does. What stays becomes
    visible again after the queue's visibility timeout, and the queue's redrive policy moves a
    message to its dead-letter queue after ``maxReceiveCount`` receives.
    """

    def __init__(
        self,
        sqs: Any,
        function: str,
        queue_url: str,
        queue_arn: str,
        properties: dict[str, Any],
        invoke: Invoke,
        log: Log,
        stop: threading.Event,
        chaos: Chaos | None = None,
    ) -> None:
        super().__init__(daemon=True, name=f"sqs:{function}")
        self.sqs = sqs
        self.function = function
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.batch_size = int(properties.get("BatchSize", 10))
        self.window = float(properties.get("MaximumBatchingWindowInSeconds", 0))
        self.partial = "ReportBatchItemFailures" in (properties.get("FunctionResponseTypes") or [])
        self.invoke = invoke
        self.log = log
        self.stop_event = stop
        self.chaos = chaos or Chaos()

    def _receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.window
        while len(messages) < self.batch_size and not self.stop_event.is_set():
            wait = 1 if not messages else 0
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = answer.get("Messages", [])
            messages += received
            if not received or time.monotonic() >= deadline:
                break
        return messages

    def poll_once(self) -> int:
        messages = self._receive()
        if not messages:
            return 0
        started = time.perf_counter()
        records = [sqs_record(m, self.queue_arn) for m in messages]
        keep: set[str] = set()
        outcome = "ok"
        try:
            kill_after = self.chaos.kill_after()
            event = {"Records": records}
            # Only a reliability run's injected crash needs the extra argument.
            result = self.invoke(self.function, event) if kill_after is None else self.invoke(self.function, event, kill_after=kill_after)
            if self.partial and isinstance(result, dict):
                failures = result.get("batchItemFailures") or []
                identifiers = {f.get("itemIdentifier") for f in failures}
                known = {r["messageId"] for r in records}
                keep = identifiers if identifiers <= known else known  # an unknown id fails the batch, as on AWS
                outcome = f"{len(keep)} failed" if keep else "ok"
        except Exception as error:
            keep = {r["messageId"] for r in records}
            outcome = f"invocation failed ({error})"
        done = [r for r in records if r["messageId"] not in keep]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url, Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)]
            )
        for record in done:
            if self.chaos.duplicate():
                self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=record["body"], MessageAttributes=_send_attributes(record))
        elapsed = (time.perf_counter() - started) * 1000
        self.log(f"SQS {self.queue_url.rsplit('/', 1)[-1]} -> {self.function} {len(records)} records, {outcome}, {elapsed:.0f} ms")
        return len(records)

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.poll_once()
            except Exception as error:  # moto going away at shutdown, mostly
                if not self.stop_event.is_set():
                    self.log(f"SQS poller for {self.function} failed: {error}")
                    time.sleep(1)


def schedule_interval(expression: str) -> float:
    """Seconds between firings of a ``rate(...)`` expression; cron expressions fire every minute
    at most locally, so they are approximated by one minute."""
    found = _RATE.match(expression.strip())
    if found:
        amount, unit = int(found.group(1)), found.group(2).rstrip("s")
        return float(amount * _UNIT_SECONDS[unit])
    if expression.startswith("cron(") and expression.endswith(")"):
        return 60.0
    raise TemplateError(f"schedule expression {expression!r} is not rate(...) or cron(...)")


def scheduled_event(rule_name: str, properties: dict[str, Any]) -> dict[str, Any]:
    """EventBridge's Scheduled Event, or the event's ``Input`` when the template sets one."""
    if properties.get("Input"):
        return dict(json.loads(properties["Input"]))
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule_name}"],
        "detail": {},
    }


class Schedule(threading.Thread):
    def __init__(self, function: str, name: str, properties: dict[str, Any], invoke: Invoke, log: Log, stop: threading.Event) -> None:
        super().__init__(daemon=True, name=f"schedule:{function}:{name}")
        self.function = function
        self.rule_name = name
        self.properties = properties
        self.interval = schedule_interval(str(properties["Schedule"]))
        self.invoke = invoke
        self.log = log
        self.stop_event = stop

    def fire(self) -> Any:
        started = time.perf_counter()
        try:
            result = self.invoke(self.function, scheduled_event(self.rule_name, self.properties))
        except Exception as error:
            self.log(f"SCHEDULE {self.rule_name} -> {self.function} failed: {error}")
            raise
        self.log(f"SCHEDULE {self.rule_name} -> {self.function} ok, {(time.perf_counter() - started) * 1000:.0f} ms")
        return result

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            # fire() logs a failure; EventBridge would retry, here the next tick does.
            with contextlib.suppress(Exception):
                self.fire()
