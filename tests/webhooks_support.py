"""Helpers of the payment-webhook tests: signed deliveries, HTTP API events and payout items.

Payout items are written here in the payouts feature's layout (``payrail.db.keys.payout`` with
id, user_id, status, amount, currency, created_at, updated_at, version, ...) plus the
unfinished-payout marker the create transaction writes, so the webhook path can be tested on
its own."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from payrail.db import keys
from payrail.webhooks.signatures import sign_jwt, sign_standard

from scenarios.receiver import Recorder as Recorder  # the tests' loopback receiver
from tests.support import Resources, load_event


def event_body(event_type: str, payout_id: str, event_id: str | None = None, **data: Any) -> bytes:
    document = {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "created_at": datetime.now(UTC).isoformat(),
        "data": {"payout_id": payout_id, "provider_reference": f"prv_{payout_id}", "failure_reason": None, **data},
    }
    return json.dumps(document, separators=(",", ":")).encode()


def funding_body(funding_reference: str, amount: int, currency: str, event_id: str | None = None) -> bytes:
    """A ``funding.received`` event as the payment provider sends it."""
    document = {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "type": "funding.received",
        "created_at": datetime.now(UTC).isoformat(),
        "data": {"funding_reference": funding_reference, "amount": amount, "currency": currency, "provider_reference": "pf_test"},
    }
    return json.dumps(document, separators=(",", ":")).encode()


def event_id_of(body: bytes) -> str:
    return str(json.loads(body)["id"])


def standard_headers(secret: str, body: bytes, webhook_id: str | None = None, timestamp: int | None = None) -> dict[str, str]:
    return sign_standard(secret, webhook_id or event_id_of(body), int(time.time()) if timestamp is None else timestamp, body)


def jwt_headers(key: str, body: bytes, kid: str = "k1", event_id: str | None = None, now: float | None = None) -> dict[str, str]:
    token = sign_jwt(key, kid, event_id or event_id_of(body), body, time.time() if now is None else now)
    return {"authorization": f"Bearer {token}"}


def webhook_request(body: bytes | str, headers: dict[str, str]) -> dict[str, Any]:
    event = load_event("webhook_receive/standard_webhooks.json")
    event["headers"] = {"content-type": "application/json", "host": "127.0.0.1:3000", **headers}
    event["body"] = body.decode() if isinstance(body, bytes) else body
    return event


def secrets_of(resources: Resources) -> tuple[str, dict[str, Any]]:
    """The current Standard Webhooks secret and the JWT key document, as the template made them."""
    sm = resources.client("secretsmanager")
    hmac_doc = json.loads(sm.get_secret_value(SecretId=resources.ref("WebhookSecrets"))["SecretString"])
    jwt_doc = json.loads(sm.get_secret_value(SecretId=resources.ref("WebhookJwtKeys"))["SecretString"])
    return hmac_doc["current"], jwt_doc


def put_payout(
    resources: Resources, status: str = "submitted", payout_id: str | None = None, age: timedelta = timedelta(0), with_marker: bool = True
) -> dict[str, Any]:
    """A payout item as the payouts feature writes it, with its unfinished-payout marker."""
    pid = payout_id or f"po_{uuid.uuid4().hex[:16]}"
    created = (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    item = {
        **keys.payout(pid),
        "gsi1pk": keys.user_payouts_index("user-1"),
        "gsi1sk": f"{created}#{pid}",
        "id": pid,
        "user_id": "user-1",
        "status": status,
        "amount": 1250,
        "currency": "EUR",
        "beneficiary": {"name": "Ada", "iban": "DE89370400440532013000"},
        "reference": "invoice 7",
        "created_at": created,
        "updated_at": created,
        "version": 1,
    }
    dynamodb = resources.client("dynamodb")
    from payrail.db import serialize

    dynamodb.put_item(TableName=resources.ref("Table"), Item=serialize(item))
    if with_marker:
        dynamodb.put_item(TableName=resources.ref("Table"), Item=serialize({**keys.outbox(pid, created), "payout_id": pid}))
    return item


def set_attribute(resources: Resources, key: dict[str, str], name: str, value: Any) -> None:
    """Set one attribute of an item, as the product's own writes would have left it."""
    from payrail.db import serialize

    resources.client("dynamodb").update_item(
        TableName=resources.ref("Table"),
        Key=serialize(key),
        UpdateExpression="SET #n = :v",
        ExpressionAttributeNames={"#n": name},
        ExpressionAttributeValues=serialize({":v": value}),
    )


def get_item(resources: Resources, key: dict[str, str]) -> dict[str, Any] | None:
    from payrail.db import deserialize

    answer = resources.client("dynamodb").get_item(
        TableName=resources.ref("Table"), Key={k: {"S": v} for k, v in key.items()}, ConsistentRead=True
    )
    return deserialize(answer["Item"]) if "Item" in answer else None


def sqs_event(bodies: list[bytes], correlation_id: str = "cid-test") -> dict[str, Any]:
    template = load_event("payment_events_worker/payout_paid.json")["Records"][0]
    records = []
    for i, body in enumerate(bodies):
        record = json.loads(json.dumps(template))
        record["messageId"] = f"msg-{i}-{uuid.uuid4().hex[:8]}"
        record["body"] = body.decode()
        record["messageAttributes"]["correlation_id"]["stringValue"] = correlation_id
        record["messageAttributes"]["event_id"]["stringValue"] = event_id_of(body)
        records.append(record)
    return {"Records": records}


def drain(resources: Resources, logical_id: str) -> list[dict[str, Any]]:
    """Every message waiting on a queue (received and deleted), as SQS records."""
    sqs = resources.client("sqs")
    url = resources.ref(logical_id)
    found: list[dict[str, Any]] = []
    while True:
        answer = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"], WaitTimeSeconds=0
        )
        messages = answer.get("Messages", [])
        if not messages:
            return found
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        found.extend(messages)


class InProcess:
    """A function loaded once and called with exactly its template environment each time, so
    several functions can share one module-scoped set of resources."""

    def __init__(self, resources: Resources, logical_id: str) -> None:
        from tests.support import load_function

        self.resources = resources
        self.logical_id = logical_id
        self.module = load_function(resources, logical_id)

    def __call__(self, event: dict[str, Any], remaining_ms: int | None = None) -> Any:
        with self.environment():
            return self.raw(event, remaining_ms)

    def environment(self) -> Any:
        """The function's environment; enter it once around calls made from several threads."""
        from tests.support import function_environment_of

        return function_environment_of(self.resources, self.logical_id)

    def raw(self, event: dict[str, Any], remaining_ms: int | None = None) -> Any:
        from tests.support import context_of

        return self.module.lambda_handler(event, context_of(self.resources, self.logical_id, remaining_ms))


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """The JSON log lines the shared logger writes meanwhile (its handler keeps the stream it
    was created with, so pytest's capsys does not see them)."""
    from payrail.observability import logger

    buffer = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def log_lines(buffer: io.StringIO, message: str) -> list[dict[str, Any]]:
    return [
        line
        for line in (json.loads(raw) for raw in buffer.getvalue().splitlines() if raw.startswith("{"))
        if line.get("message") == message
    ]


def http_request(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for ``method path``."""
    event = load_event("webhook_receive/standard_webhooks.json")
    event["routeKey"] = f"{method} {path}"
    event["rawPath"] = path
    event["requestContext"] = {**event["requestContext"], "routeKey": f"{method} {path}"}
    event["requestContext"]["http"] = {**event["requestContext"]["http"], "method": method, "path": path}
    event["headers"] = {"content-type": "application/json", "host": "127.0.0.1:3000", **(headers or {})}
    event["body"] = None if body is None else json.dumps(body)
    return event
