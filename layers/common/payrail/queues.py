"""The SQS adapter: sends carry the correlation id as a message attribute, and errors become
the project's own."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from payrail import aws
from payrail.errors import DependencyFailure
from payrail.observability import CORRELATION_ATTRIBUTE, correlation_id, logger


def _attributes(extra: Mapping[str, str] | None) -> dict[str, Any]:
    attributes = {CORRELATION_ATTRIBUTE: correlation_id(), **(extra or {})}
    return {name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()}


def send(queue_url: str, body: Mapping[str, Any], delay_seconds: int = 0, attributes: Mapping[str, str] | None = None) -> str:
    """Send one JSON message; returns its message id."""
    try:
        answer = aws.client("sqs").send_message(
            QueueUrl=queue_url,
            MessageBody=json.dumps(body, separators=(",", ":")),
            DelaySeconds=delay_seconds,
            MessageAttributes=_attributes(attributes),
        )
    except (ClientError, BotoCoreError) as error:
        raise aws.failure("SQS send", error) from error
    return str(answer["MessageId"])


def send_batch(queue_url: str, bodies: Sequence[Mapping[str, Any]]) -> int:
    """Send many JSON messages, ten per request; returns how many SQS accepted.

    Entries SQS rejects are retried once; any still failing raise DependencyFailure so the
    caller (a scheduled job) runs again rather than silently dropping work."""
    sent = 0
    sqs = aws.client("sqs")
    for start in range(0, len(bodies), 10):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps(body, separators=(",", ":")), "MessageAttributes": _attributes(None)}
            for i, body in enumerate(bodies[start : start + 10])
        ]
        for _ in range(2):
            try:
                answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as error:
                raise aws.failure("SQS batch send", error) from error
            sent += len(answer.get("Successful", []))
            failed_ids = {f["Id"] for f in answer.get("Failed", [])}
            entries = [e for e in entries if e["Id"] in failed_ids]
            if not entries:
                break
        if entries:
            raise DependencyFailure(f"SQS rejected {len(entries)} messages")
    return sent


def queue_depth(queue_url: str) -> int:
    """The messages ready to be received."""
    return _counted(queue_url, "ApproximateNumberOfMessages")


def messages_waiting(queue_url: str) -> int:
    """The messages not yet received or back for another receive: those ready and those delayed."""
    return _counted(queue_url, "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed")


def _counted(queue_url: str, *names: str) -> int:
    try:
        answer = aws.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(names))
    except (ClientError, BotoCoreError) as error:
        raise aws.failure("SQS GetQueueAttributes", error) from error
    return sum(int(answer["Attributes"][name]) for name in names)


def change_visibility(queue_url: str, receipt_handle: str, seconds: int) -> bool:
    """Make a received message visible again after ``seconds`` (0 to 43200): a consumer's backoff
    before SQS delivers it again. Best effort: if it fails, the queue's own visibility timeout
    still brings the message back, just later. Returns whether it was applied."""
    try:
        aws.client("sqs").change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, min(43200, int(seconds)))
        )
    except (ClientError, BotoCoreError) as error:
        logger.warning("visibility change failed; the queue's visibility timeout applies", extra={"error": type(error).__name__})
        return False
    return True
