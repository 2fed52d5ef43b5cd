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

from tests.payouts_support import VALID_BODY, call, funded_token, http_event
from tests.support import Resources
from tests.webhooks_support import drain

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
    """An access token for ``user_id``, funded first: every payout reserves its amount."""
    return funded_token(resources, user_id)


def delivery_messages(resources: Resources) -> list[dict[str, Any]]:
    """Every message now visible on the delivery queue, taken off it (as SQS event records)."""
    return drain(resources, "WebhookDeliveriesQueue")


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


class Pipeline:
    """The merchant webhook path in-process, each function with its template environment and IAM
    role: payouts made with ``POST /payouts``, the stream read from moto (the table's real stream)
    and handed to the fan-out as Lambda would, the delivery queue drained into the worker."""

    def __init__(self, resources: Resources) -> None:
        from tests.webhooks_support import InProcess

        self.resources = resources
        self.payouts_api = InProcess(resources, "PayoutsApiFunction")
        self.endpoints_api = InProcess(resources, "WebhookEndpointsApiFunction")
        self.fan_out = InProcess(resources, "WebhookFanOutFunction")
        self.worker = InProcess(resources, "WebhookDeliveryWorkerFunction")
        self.tokens: dict[str, str] = {}
        self._stream_position: str | None = None

    def token(self, user_id: str) -> str:
        if user_id not in self.tokens:
            self.tokens[user_id] = funded_token(self.resources, user_id)
        return self.tokens[user_id]

    def api(self, user_id: str, method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> tuple[int, Any]:
        """A call of the endpoints API as ``user_id``; (status, JSON body)."""
        route, parameters = _route(path)
        event = http_event(
            method,
            path,
            body=body,
            headers={"authorization": f"Bearer {self.token(user_id)}"},
            query=query,
            route=route,
            path_parameters=parameters,
        )
        response = self.endpoints_api(event)
        text = response.get("body")
        return response["statusCode"], json.loads(text) if text else None

    def register(self, user_id: str, url: str, events: list[str] | None = None) -> dict[str, Any]:
        status, endpoint = self.api(user_id, "POST", "/webhook-endpoints", {"url": url, **({"events": events} if events else {})})
        assert status == 201, endpoint
        return dict(endpoint)

    def payout(self, user_id: str = "user-1") -> dict[str, Any]:
        return create_payout(lambda event, _context: self.payouts_api(event), self.token(user_id))

    def stream(self) -> dict[str, Any]:
        """Hand the fan-out every stream record written since the last call that its mapping's
        FilterCriteria let through, as Lambda would (its answer)."""
        from devstack.streams import StreamMapping, lambda_record

        [properties] = self.resources.functions["WebhookFanOutFunction"].events_of("DynamoDB").values()
        mapping = StreamMapping.from_properties(properties)
        streams = self.resources.client("dynamodbstreams")
        arn = mapping.stream_arn
        [shard] = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        where = {"ShardIteratorType": "TRIM_HORIZON"}
        if self._stream_position:
            where = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self._stream_position}
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], **where)["ShardIterator"]
        records = [lambda_record(raw, arn) for raw in streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]]
        if not records:
            return {"batchItemFailures": []}
        self._stream_position = records[-1]["dynamodb"]["SequenceNumber"]
        passed = [record for record in records if mapping.matches(record)]
        return dict(self.fan_out({"Records": passed})) if passed else {"batchItemFailures": []}

    def deliver(self) -> list[Any]:
        """Run the worker on every visible delivery message, one per invocation; their answers."""
        return [self.worker(as_sqs_event([message])) for message in delivery_messages(self.resources)]


def _route(path: str) -> tuple[str | None, dict[str, str] | None]:
    parts = path.strip("/").split("/")
    if len(parts) == 1:
        return None, None
    parameters = {"endpoint_id": parts[1]}
    if len(parts) == 2:
        return "/webhook-endpoints/{endpoint_id}", parameters
    if parts[2] == "events":
        return "/webhook-endpoints/{endpoint_id}/events/{event_id}/redeliver", {**parameters, "event_id": parts[3]}
    return "/webhook-endpoints/{endpoint_id}/" + parts[2], parameters
