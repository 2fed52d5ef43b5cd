"""Helpers of the merchant webhook tests: payouts created through the API in-process, DynamoDB
stream records shaped as Lambda sends them, endpoints registered through the API, and the
delivery queue drained into SQS events for the worker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from payrail.db import serialize

from tests.payouts_support import VALID_BODY, call, http_event, mint_token
from tests.support import Resources

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Table/stream/2026-01-01T00:00:00.000"


def create_payout(payouts_api: Handler, token: str, key: str | None = None, body: Mapping[str, Any] = VALID_BODY) -> dict[str, Any]:
    """A payout created with ``POST /payouts`` as a client would (the one place tests make payouts)."""
    headers = {"authorization": f"Bearer {token}", "idempotency-key": key or f"key-{uuid.uuid4().hex}"}
    status, _, payout = call(payouts_api, http_event("POST", "/payouts", body=dict(body), headers=headers))
    assert status == 201, payout
    return dict(payout)


def table_item(resources: Resources, key: Mapping[str, str]) -> dict[str, Any]:
    """An item in DynamoDB's JSON (what a stream record's images hold)."""
    answer = resources.client("dynamodb").get_item(TableName=resources.ref("Table"), Key=serialize(key), ConsistentRead=True)
    return dict(answer["Item"])


_sequence = iter(range(10**6, 10**9))


def stream_record(name: str, new: Mapping[str, Any] | None, old: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One DynamoDB stream record (NEW_AND_OLD_IMAGES) as Lambda passes it; images in DynamoDB JSON."""
    image = new or old or {}
    change: dict[str, Any] = {
        "ApproximateCreationDateTime": int(time.time()),
        "Keys": {"pk": image["pk"], "sk": image["sk"]},
        "SequenceNumber": str(next(_sequence)),
        "SizeBytes": 512,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        change["NewImage"] = dict(new)
    if old is not None:
        change["OldImage"] = dict(old)
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": change,
        "eventSourceARN": STREAM_ARN,
    }


def stream_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def with_changes(image: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """``image`` (DynamoDB JSON) with plain-valued attributes changed."""
    return {**image, **serialize(changes)}


def token_for(resources: Resources, user_id: str) -> str:
    return mint_token(resources, user_id)


def delivery_messages(resources: Resources) -> list[dict[str, Any]]:
    """Every message now visible on the delivery queue, taken off it (as SQS event records)."""
    sqs = resources.client("sqs")
    url = resources.ref("WebhookDeliveriesQueue")
    found: list[dict[str, Any]] = []
    while True:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"])
        messages = answer.get("Messages", [])
        if not messages:
            return found
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        found.extend(messages)


def as_sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Received SQS messages as the event Lambda's SQS poller would pass."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {
                    "ApproximateReceiveCount": message.get("Attributes", {}).get("ApproximateReceiveCount", "1"),
                    "SentTimestamp": str(int(time.time() * 1000)),
                    "SenderId": "local",
                    "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:deliveries",
                "awsRegion": "us-east-1",
            }
            for message in messages
        ]
    }


def bodies(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(message["Body"]) for message in messages]


def put_endpoint(
    resources: Resources, user_id: str, url: str = "http://127.0.0.1:9/hooks", events: list[str] | None = None, status: str = "enabled"
) -> str:
    """An endpoint item as the endpoints API writes it (without its secret: the fan-out never reads one)."""
    from payrail.db import keys
    from payrail.webhooks.merchant_events import EVENT_TYPES

    endpoint_id = f"we_{uuid.uuid4().hex}"
    created = "2026-01-01T00:00:00.000000Z"
    item = {
        **keys.webhook_endpoint(endpoint_id),
        "gsi1pk": keys.user_webhook_endpoints_index(user_id),
        "gsi1sk": f"{created}#{endpoint_id}",
        "id": endpoint_id,
        "user_id": user_id,
        "url": url,
        "events": list(events or EVENT_TYPES),
        "description": "",
        "status": status,
        "created_at": created,
        "updated_at": created,
    }
    resources.client("dynamodb").put_item(TableName=resources.ref("Table"), Item=serialize(item))
    return endpoint_id


def items_with_prefix(resources: Resources, prefix: str) -> list[dict[str, Any]]:
    from payrail.db import deserialize

    from tests.payouts_support import all_items

    return [deserialize(item) for item in all_items(resources) if item["pk"]["S"].startswith(prefix)]
