"""SQS and EventBridge event sources, as Lambda's pollers and EventBridge would drive them."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from devstack import iam
from devstack.chaos import Chaos
from devstack.template import ACCOUNT_ID, REGION, TemplateError

Invoke = Callable[..., Any]
Log = Callable[[str], None]

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
LONG_POLL_SECONDS = 20  # Lambda's pollers long-poll, ReceiveMessage's longest wait
# What Lambda's CreateEventSourceMapping requires of the execution role on an SQS queue:
# https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html#events-sqs-permissions
POLL_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


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


class SqsMappingError(Exception):
    """The event source mapping cannot be created (as CreateEventSourceMapping would refuse it)."""


class SqsPoller(threading.Thread):
    """Lambda's SQS event source mapping: receive a batch, invoke, delete what succeeded.

    With ``ReportBatchItemFailures`` only the records the function names as failed stay on the
    queue; without it, or when the invocation fails, the whole batch does. What stays becomes
    visible again after the queue's visibility timeout, and the queue's redrive policy moves a
    message to its dead-letter queue after ``maxReceiveCount`` receives.

    The mapping reads and deletes with the function's execution role, as Lambda does: creating it
    checks that the role may receive, delete and read the queue's attributes there (what
    CreateEventSourceMapping checks), and every call is authorised against the role
    (devstack.iam), so a role that cannot poll its queue fails here as on AWS.

    A mapping runs several pollers (``listening`` is shared by them). Like Lambda's, they long-poll
    (``WaitTimeSeconds`` 20), and only one of them at a time waits on an empty queue: a poller
    whose last receive found messages receives again at once; one that found none waits for its
    turn to listen. So an idle mapping costs one pending request, and a burst still reaches every
    poller within milliseconds (each listener hands the turn on as soon as its receive answers).
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
        identity: iam.Identity | None = None,
        listening: threading.Lock | None = None,
    ) -> None:
        """``identity``: the function's role, which polls the queue (None: nothing is authorised,
        as with ``--no-iam``); ``listening``: the turn to wait on an empty queue, shared by the
        mapping's pollers (None: this poller's own)."""
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
        self.identity = identity
        self.listening = listening or threading.Lock()

    # ---------------------------------------------------------------- the mapping's creation
    def check_role(self) -> None:
        """What CreateEventSourceMapping checks of the execution role (its refusal's wording), then
        the queue's own ARN read with the role, as Lambda reads the queue's attributes: a mapping
        on a queue that is not there fails here."""
        if self.identity is not None:
            for action in POLL_ACTIONS:
                if not iam.evaluate(self.identity.policies, iam.Request(action, self.queue_arn)).allowed:
                    raise SqsMappingError(
                        f"{self.function}: the provided execution role does not have permissions to call"
                        f" {action.split(':', 1)[1]} on SQS ({self.queue_arn})"
                    )
        with self._as_role():
            attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]
        if attributes.get("QueueArn") != self.queue_arn:
            raise SqsMappingError(f"{self.function}: {self.queue_url} is {attributes.get('QueueArn')}, not the mapping's {self.queue_arn}")

    @contextlib.contextmanager
    def _as_role(self) -> Iterator[None]:
        if self.identity is None:
            yield
            return
        with iam.acting_as(self.identity):
            yield

    # ---------------------------------------------------------------- polling
    def _receive(self, wait: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.window
        with self._as_role():
            while len(messages) < self.batch_size and not self.stop_event.is_set():
                answer = self.sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                    WaitTimeSeconds=wait if not messages else 0,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
                received = answer.get("Messages", [])
                messages += received
                if not received or time.monotonic() >= deadline:
                    break
        return messages

    def poll_once(self, wait: int = 1) -> int:
        """Receive one batch (waiting up to ``wait`` seconds for its first message), invoke the
        function with it, delete what succeeded; the records delivered."""
        return self._deliver(self._receive(wait))

    def _deliver(self, messages: list[dict[str, Any]]) -> int:
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
        with self._as_role():
            for start in range(0, len(done), 10):
                chunk = done[start : start + 10]
                self.sqs.delete_message_batch(
                    QueueUrl=self.queue_url, Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)]
                )
        # A reliability run's injected duplicate is the fault's, not the function's role's.
        for record in done:
            if self.chaos.duplicate():
                self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=record["body"], MessageAttributes=_send_attributes(record))
        elapsed = (time.perf_counter() - started) * 1000
        self.log(f"SQS {self.queue_url.rsplit('/', 1)[-1]} -> {self.function} {len(records)} records, {outcome}, {elapsed:.0f} ms")
        return len(records)

    def run(self) -> None:
        found = False  # whether the last receive found messages (then there may be more)
        while not self.stop_event.is_set():
            try:
                if found:
                    messages = self._receive(0)
                else:
                    with self.listening:
                        if self.stop_event.is_set():
                            break
                        messages = self._receive(LONG_POLL_SECONDS)
                found = bool(messages)
                self._deliver(messages)
            except Exception as error:  # a refused call, or moto going away at shutdown
                found = False
                if not self.stop_event.is_set():
                    self.log(f"SQS poller for {self.function} failed: {error}")
                    self.stop_event.wait(1)


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
