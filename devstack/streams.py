"""The DynamoDB Streams event source, as Lambda's stream poller drives a function.

Lambda reads each shard of the stream in order, one batch in flight per shard, and moves its
checkpoint past a batch only when the function succeeded with it:
https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html

* up to ``BatchSize`` records (default 100) per invocation, in Lambda's event shape; with
  ``MaximumBatchingWindowInSeconds`` it waits that long for a batch to fill;
* ``FilterCriteria``: a record no pattern matches is dropped (and checkpointed) before batching;
* with ``ReportBatchItemFailures``, the lowest ``batchItemFailures[].itemIdentifier`` (a sequence
  number) is where the next attempt starts: the records before it are checkpointed; an empty list
  is success; an identifier that is not in the batch fails the whole batch;
* an error (raised, timed out, crashed) retries the whole batch; with
  ``BisectBatchOnFunctionError`` the batch is split in two first (a split does not count as a
  retry);
* after ``MaximumRetryAttempts`` retries (default -1: until the record expires) the batch is
  given up: its invocation record goes to ``DestinationConfig.OnFailure`` (an SQS queue) and the
  shard moves on;
* the mapping reads the stream, and sends to the destination, with the function's execution role:
  creating it checks the role as Lambda's CreateEventSourceMapping does, and every call is
  authorised against it (devstack.iam), so a role that cannot read the stream fails here as on AWS.

What differs from AWS: moto keeps one shard per table, so there is one ordered sequence of
records; sequence numbers are consecutive; no records expire (no 24-hour trim), and
``MaximumRecordAgeInSeconds``, ``ParallelizationFactor``, ``TumblingWindowInSeconds`` and the
6 MB payload limit are not applied. A write wakes the poller at once (see
``devstack.moto_dynamodb.wait_for_stream_records``), so a record reaches the function within
milliseconds. Lambda polls each shard four times a second; here every record appended is seen
the moment it is, so an idle poller reads the stream again only every ``IDLE_POLL_SECONDS``, in
case something reached moto's shard without passing the notification (each read is an HTTP call
to moto and an IAM decision; four a second, per mapping, kept an idle stack busy).
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devstack import iam
from devstack.moto_dynamodb import stream_records_written, wait_for_stream_records
from devstack.template import TemplateError

Invoke = Callable[..., Any]
Log = Callable[[str], None]

IDLE_POLL_SECONDS = 5.0  # an idle shard's reads; a write wakes the poller at once
STOP_CHECK_SECONDS = 0.1
RETRY_DELAY_SECONDS = (0.05, 0.1, 0.2, 0.5, 1.0)  # between attempts at a failing batch
READ_ACTIONS = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams")


class StreamMappingError(Exception):
    """The event source mapping cannot be created (as CreateEventSourceMapping would refuse it)."""


@dataclass(frozen=True)
class StreamMapping:
    """A ``Type: DynamoDB`` event's properties, with Lambda's defaults."""

    stream_arn: str
    starting_position: str
    batch_size: int = 100
    window_seconds: float = 0.0
    max_retries: int = -1
    bisect: bool = False
    partial: bool = False
    filters: tuple[Any, ...] = ()
    on_failure: str | None = None
    enabled: bool = True

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any]) -> StreamMapping:
        from moto.events.models import EventPattern  # EventBridge's pattern language, as moto matches it

        stream = properties.get("Stream")
        if not isinstance(stream, str) or "/stream/" not in stream:
            raise TemplateError(f"a DynamoDB event's Stream must be a table's StreamArn, not {stream!r}")
        position = str(properties.get("StartingPosition", ""))
        if position not in ("TRIM_HORIZON", "LATEST"):
            raise TemplateError(f"a DynamoDB event's StartingPosition must be TRIM_HORIZON or LATEST, not {position!r}")
        batch_size = int(properties.get("BatchSize", 100))
        if not 1 <= batch_size <= 10000:
            raise TemplateError(f"a DynamoDB event's BatchSize must be 1 to 10000, not {batch_size}")
        retries = int(properties.get("MaximumRetryAttempts", -1))
        if not -1 <= retries <= 10000:
            raise TemplateError(f"a DynamoDB event's MaximumRetryAttempts must be -1 to 10000, not {retries}")
        patterns = []
        for entry in (properties.get("FilterCriteria") or {}).get("Filters") or []:
            raw = entry["Pattern"]
            patterns.append(EventPattern.load(raw if isinstance(raw, str) else json.dumps(raw)))
        destination = ((properties.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        if destination is not None and not str(destination).startswith("arn:aws:sqs:"):
            raise TemplateError(f"the local runtime sends on-failure records to SQS queues only, not {destination}")
        return cls(
            stream_arn=stream,
            starting_position=position,
            batch_size=batch_size,
            window_seconds=float(properties.get("MaximumBatchingWindowInSeconds", 0)),
            max_retries=retries,
            bisect=bool(properties.get("BisectBatchOnFunctionError", False)),
            partial="ReportBatchItemFailures" in (properties.get("FunctionResponseTypes") or []),
            filters=tuple(patterns),
            on_failure=str(destination) if destination else None,
            enabled=properties.get("Enabled", True) is not False,
        )

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether Lambda passes the record to the function: any pattern matches (or there is none)."""
        return not self.filters or any(pattern.matches_event(record) for pattern in self.filters)


def _wire(value: Any) -> Any:
    """An attribute value as boto3 parsed it, back in DynamoDB JSON (binary as base64 text)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list | set | frozenset):
        return [_wire(v) for v in value]
    return value


def lambda_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record (as boto3 returns it) in the shape Lambda gives the function:
    https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html#services-ddb-event"""
    change = record["dynamodb"]
    created = change.get("ApproximateCreationDateTime")
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": int(created.timestamp()) if isinstance(created, datetime) else created,
        "Keys": _wire(change["Keys"]),
    }
    for image in ("NewImage", "OldImage"):
        if image in change:
            dynamodb[image] = _wire(change[image])
    dynamodb |= {"SequenceNumber": change["SequenceNumber"], "SizeBytes": change["SizeBytes"], "StreamViewType": change["StreamViewType"]}
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": record["awsRegion"],
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }


def _iso(epoch: Any) -> str:
    moment = datetime.fromtimestamp(float(epoch), UTC) if epoch is not None else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def failure_record(
    function_arn: str, stream_arn: str, shard_id: str, batch: Sequence[Mapping[str, Any]], invocations: int, error: str | None
) -> dict[str, Any]:
    """The invocation record Lambda sends to a stream mapping's on-failure destination:
    https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html"""
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if error is not None:
        response["functionError"] = "Unhandled"
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": invocations,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _iso(batch[0]["dynamodb"].get("ApproximateCreationDateTime")),
            "approximateArrivalOfLastRecord": _iso(batch[-1]["dynamodb"].get("ApproximateCreationDateTime")),
            "batchSize": len(batch),
            "streamArn": stream_arn,
        },
    }


@dataclass
class _Shard:
    shard_id: str
    iterator: str | None
    # Records read and matching the filters, not yet done with (the head is the next to deliver).
    pending: list[dict[str, Any]] = field(default_factory=list)
    last_read: str | None = None  # the sequence number of the last record read from the shard
    first_pending_at: float = 0.0
    attempts: int = 0  # invocations of the batch that starts at pending[0]
    limit: int = 0  # the batch size after a bisection (0: the mapping's)
    retry_at: float = 0.0
    exhausted: tuple[list[dict[str, Any]], str | None] | None = None  # a batch given up on, not yet sent


class DynamoDBStreamPoller(threading.Thread):
    """One event source mapping of a function on a table's stream."""

    def __init__(
        self,
        streams: Any,
        sqs: Any,
        function: str,
        function_arn: str,
        mapping: StreamMapping,
        invoke: Invoke,
        log: Log,
        stop: threading.Event,
        identity: iam.Identity | None = None,
        queue_url_for_arn: Callable[[str], str] | None = None,
    ) -> None:
        """``identity``: the function's role, which reads the stream and sends to the
        destination (None: nothing is authorised, as with ``--no-iam``)."""
        super().__init__(daemon=True, name=f"ddbstream:{function}")
        self.streams = streams
        self.sqs = sqs
        self.function = function
        self.function_arn = function_arn
        self.mapping = mapping
        self.invoke = invoke
        self.log = log
        self.stop_event = stop
        self.identity = identity
        self.queue_url_for_arn = queue_url_for_arn
        self.shards: dict[str, _Shard] = {}
        self.dropped_by_filters = 0
        self.sent_to_destination = 0

    # ---------------------------------------------------------------- the mapping's creation
    def check_role(self) -> None:
        """What CreateEventSourceMapping checks of the execution role: that it may read the stream
        and send to the on-failure destination (its refusal's wording)."""
        if self.identity is None:
            return
        for action in READ_ACTIONS:
            resource = "*" if action == "dynamodb:ListStreams" else self.mapping.stream_arn
            if not iam.evaluate(self.identity.policies, iam.Request(action, resource)).allowed:
                raise StreamMappingError(
                    f"{self.function}: cannot access stream {self.mapping.stream_arn}. Please ensure the role can perform the"
                    f" GetRecords, GetShardIterator, DescribeStream, and ListStreams Actions on your stream in IAM ({action} is denied)"
                )
        destination = self.mapping.on_failure
        if destination and not iam.evaluate(self.identity.policies, iam.Request("sqs:SendMessage", destination)).allowed:
            raise StreamMappingError(
                f"{self.function}: the provided execution role does not have permissions to call SendMessage on {self.mapping.on_failure}"
            )

    def subscribe(self) -> None:
        """The shards of the stream, each with an iterator at the starting position (on creation,
        so that LATEST means the records written after the mapping was created)."""
        with self._as_role():
            shards = self.streams.describe_stream(StreamArn=self.mapping.stream_arn)["StreamDescription"]["Shards"]
            for shard in shards:
                if shard["ShardId"] not in self.shards:
                    self.shards[shard["ShardId"]] = _Shard(shard["ShardId"], self._iterator(shard["ShardId"], None))

    @contextlib.contextmanager
    def _as_role(self) -> Iterator[None]:
        if self.identity is None:
            yield
            return
        with iam.acting_as(self.identity):
            yield

    def _iterator(self, shard_id: str, after: str | None) -> str:
        arguments: dict[str, Any] = {"StreamArn": self.mapping.stream_arn, "ShardId": shard_id}
        if after is None:
            arguments["ShardIteratorType"] = self.mapping.starting_position
        else:
            arguments |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
        return str(self.streams.get_shard_iterator(**arguments)["ShardIterator"])

    # ---------------------------------------------------------------- reading
    def _read(self, shard: _Shard) -> None:
        """Everything new on the shard, filtered, after what is already pending."""
        from botocore.exceptions import ClientError

        renewed = False
        while True:
            if shard.iterator is None:
                shard.iterator = self._iterator(shard.shard_id, shard.last_read)
                renewed = True
            try:
                answer = self.streams.get_records(ShardIterator=shard.iterator, Limit=1000)
            except ClientError as error:
                if error.response["Error"]["Code"] == "AccessDeniedException" or renewed:
                    raise
                shard.iterator = None  # expired or unknown: once, a new one where the shard was read to
                continue
            shard.iterator = answer.get("NextShardIterator")
            records = answer.get("Records", [])
            for raw in records:
                record = lambda_record(raw, self.mapping.stream_arn)
                shard.last_read = record["dynamodb"]["SequenceNumber"]
                if not self.mapping.matches(record):
                    self.dropped_by_filters += 1
                    continue
                if not shard.pending:
                    shard.first_pending_at = time.monotonic()
                shard.pending.append(record)
            if len(records) < 1000:
                return

    def poll_once(self) -> int:
        """Read every shard and deliver at most one batch of each; the records delivered."""
        if not self.shards:
            self.subscribe()
        delivered = 0
        with self._as_role():
            for shard in self.shards.values():
                self._read(shard)
                delivered += self._deliver(shard)
        return delivered

    # ---------------------------------------------------------------- delivering
    def _deliver(self, shard: _Shard) -> int:
        if not shard.pending:
            return 0
        size = shard.limit or self.mapping.batch_size
        waited = time.monotonic() - shard.first_pending_at
        if shard.exhausted is not None:  # retries exhausted, but the destination refused the record
            self._give_up(shard, *shard.exhausted)
            return 0
        if len(shard.pending) < size and waited < self.mapping.window_seconds:
            return 0  # the batching window is still open
        batch = shard.pending[:size]
        shard.attempts += 1
        started = time.perf_counter()
        error: str | None = None
        failed_from: int | None = None  # index in batch of the first record to retry
        try:
            result = self.invoke(self.function, {"Records": batch})
            if self.mapping.partial and isinstance(result, dict) and result.get("batchItemFailures"):
                failed_from = self._first_failure(batch, result["batchItemFailures"])
        except Exception as raised:
            error = str(raised) or type(raised).__name__
            failed_from = 0
        elapsed = (time.perf_counter() - started) * 1000
        outcome = "ok" if failed_from is None else f"failed from {batch[failed_from]['dynamodb']['SequenceNumber']}"
        self.log(f"DDB STREAM -> {self.function} {len(batch)} records, {outcome}{f' ({error})' if error else ''}, {elapsed:.0f} ms")
        if failed_from is None:
            self._done(shard, len(batch))
            return len(batch)
        if failed_from > 0:  # the records before the reported failure are checkpointed
            self._done(shard, failed_from)
            shard.attempts = 1
            batch = batch[failed_from:]
        if error is not None and self.mapping.bisect and len(batch) > 1:
            shard.limit = len(batch) // 2  # a split batch is not a retry
            shard.attempts = 0
            return len(batch)
        if 0 <= self.mapping.max_retries < shard.attempts:
            shard.exhausted = (batch, error)
            self._give_up(shard, batch, error)
        else:
            shard.retry_at = time.monotonic() + RETRY_DELAY_SECONDS[min(shard.attempts, len(RETRY_DELAY_SECONDS)) - 1]
        return len(batch)

    @staticmethod
    def _first_failure(batch: Sequence[Mapping[str, Any]], failures: Sequence[Any]) -> int:
        """Where the retry starts: the lowest reported sequence number; the whole batch when one is
        missing or not in the batch (as Lambda treats an invalid partial response)."""
        positions = {record["dynamodb"]["SequenceNumber"]: index for index, record in enumerate(batch)}
        identifiers = [f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures]
        if any(identifier not in positions for identifier in identifiers):
            return 0
        return min(positions[str(identifier)] for identifier in identifiers)

    def _done(self, shard: _Shard, count: int) -> None:
        del shard.pending[:count]
        shard.attempts = 0
        shard.limit = 0
        shard.retry_at = 0.0
        shard.exhausted = None
        shard.first_pending_at = time.monotonic()

    def _give_up(self, shard: _Shard, batch: list[dict[str, Any]], error: str | None) -> None:
        """Retries exhausted: the invocation record to the destination, and the shard moves on."""
        if self.mapping.on_failure:
            record = failure_record(self.function_arn, self.mapping.stream_arn, shard.shard_id, batch, shard.attempts, error)
            queue_url = self.queue_url_for_arn(self.mapping.on_failure) if self.queue_url_for_arn else self.mapping.on_failure
            # A refused send raises here: the batch stays, and the next poll tries again.
            self.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record))
            self.sent_to_destination += 1
        first, last = batch[0]["dynamodb"]["SequenceNumber"], batch[-1]["dynamodb"]["SequenceNumber"]
        where = f"sent to {self.mapping.on_failure}" if self.mapping.on_failure else "discarded (no on-failure destination)"
        self.log(f"DDB STREAM -> {self.function} gave up on records {first}..{last} after {shard.attempts} attempts: {where}")
        self._done(shard, len(batch))

    # ---------------------------------------------------------------- the thread
    def _waiting_for_retry(self) -> float:
        now = time.monotonic()
        return max([shard.retry_at - now for shard in self.shards.values() if shard.pending] or [0.0])

    def run(self) -> None:
        while not self.stop_event.is_set():
            seen = stream_records_written()
            try:
                delay = self._waiting_for_retry()
                if delay > 0:
                    self.stop_event.wait(delay)
                    continue
                if self.poll_once():
                    continue
            except Exception as error:  # a refused call, or moto going away at shutdown
                if not self.stop_event.is_set():
                    self.log(f"DDB STREAM poller for {self.function} failed: {error}")
                    self.stop_event.wait(1)
                continue
            # Nothing to deliver: wait for a write (or Lambda's polling interval, or the window),
            # looking at the stop event every STOP_CHECK_SECONDS.
            pending = any(shard.pending for shard in self.shards.values())
            deadline = time.monotonic() + (min(IDLE_POLL_SECONDS, self.mapping.window_seconds) if pending else IDLE_POLL_SECONDS)
            while not self.stop_event.is_set():
                left = deadline - time.monotonic()
                if left <= 0 or wait_for_stream_records(seen, min(left, STOP_CHECK_SECONDS)):
                    break
