"""The fan-out, in-process on moto with its IAM role: stream records in, events, delivery tasks
and messages out, once per (event, endpoint) pair whatever is retried."""

from __future__ import annotations

import json
from typing import Any

import pytest
from payrail import queues
from payrail.db import keys
from payrail.errors import DependencyFailure

from tests.merchant_webhooks_support import (
    bodies,
    create_payout,
    delivery_messages,
    items_with_prefix,
    put_endpoint,
    stream_event,
    stream_record,
    table_item,
    token_for,
    with_changes,
)
from tests.support import LambdaContext, Resources
from tests.webhooks_support import InProcess


@pytest.fixture
def fan_out(resources: Resources):
    function = InProcess(resources, "WebhookFanOutFunction")
    return lambda event, _context: function(event)


@pytest.fixture
def payout_image(resources: Resources) -> dict[str, Any]:
    """A payout made by POST /payouts for user-1, as its item is in the table (DynamoDB JSON)."""
    payouts_api = InProcess(resources, "PayoutsApiFunction")
    payout = create_payout(lambda event, _context: payouts_api(event), token_for(resources, "user-1"))
    return table_item(resources, keys.payout(payout["id"]))


def test_a_created_payout_reaches_each_enabled_subscribed_endpoint_of_its_owner_once(resources: Resources, fan_out, payout_image) -> None:
    # Given user-1's endpoints: two wanting payout.created, one disabled, one wanting only paid; and another user's
    wanted = {put_endpoint(resources, "user-1"), put_endpoint(resources, "user-1", events=["payout.created"])}
    put_endpoint(resources, "user-1", status="disabled")
    put_endpoint(resources, "user-1", events=["payout.paid"])
    put_endpoint(resources, "user-2")
    # When the stream hands the fan-out the payout's insert
    answer = fan_out(stream_event(stream_record("INSERT", payout_image)), LambdaContext())
    # Then one event is recorded, and each wanted endpoint gets one task and one message
    assert answer == {"batchItemFailures": []}
    [event] = items_with_prefix(resources, "WHEVT#")
    assert event["type"] == "payout.created"
    assert event["user_id"] == "user-1"
    assert json.loads(event["body"])["data"]["object"]["id"] == payout_image["id"]["S"]
    assert {task["pk"].split("#")[1] for task in items_with_prefix(resources, "WHTASK#")} == wanted
    sent = bodies(delivery_messages(resources))
    assert sorted(m["endpoint_id"] for m in sent) == sorted(wanted)
    assert {m["event_id"] for m in sent} == {event["id"]}
    assert all(m["body"] == event["body"] for m in sent)


def test_a_record_delivered_twice_makes_no_second_event_or_task(resources: Resources, fan_out, payout_image) -> None:
    endpoint = put_endpoint(resources, "user-1")
    record = stream_record("INSERT", payout_image)
    fan_out(stream_event(record), LambdaContext())
    fan_out(stream_event(record), LambdaContext())
    assert len(items_with_prefix(resources, "WHEVT#")) == 1
    assert len(items_with_prefix(resources, "WHTASK#")) == 1
    # The pair is still pending, so the retry sends again (a duplicate message is allowed; the worker settles it once)
    sent = bodies(delivery_messages(resources))
    assert [m["endpoint_id"] for m in sent] == [endpoint, endpoint]
    assert len({m["event_id"] for m in sent}) == 1


def test_a_settled_pair_is_not_sent_again(resources: Resources, fan_out, payout_image) -> None:
    endpoint = put_endpoint(resources, "user-1")
    record = stream_record("INSERT", payout_image)
    fan_out(stream_event(record), LambdaContext())
    [task] = items_with_prefix(resources, "WHTASK#")
    delivery_messages(resources)
    resources.client("dynamodb").update_item(
        TableName=resources.ref("Table"),
        Key={"pk": {"S": task["pk"]}, "sk": {"S": "TASK"}},
        UpdateExpression="SET #s = :d",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":d": {"S": "delivered"}},
    )
    fan_out(stream_event(record), LambdaContext())
    assert delivery_messages(resources) == []
    assert endpoint in task["pk"]


def test_a_failed_send_fails_the_record_and_its_retry_still_sends(resources: Resources, fan_out, payout_image, monkeypatch) -> None:
    # Given the task written but the queue refusing the send (the function dying between the two is the same)
    endpoint = put_endpoint(resources, "user-1")
    record = stream_record("INSERT", payout_image)
    real_send = queues.send
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise DependencyFailure("SQS is down")
        return real_send(*args, **kwargs)

    monkeypatch.setattr(queues, "send", flaky)
    answer = fan_out(stream_event(record), LambdaContext())
    # Then Lambda is told to retry from this record
    assert answer == {"batchItemFailures": [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]}
    assert len(items_with_prefix(resources, "WHTASK#")) == 1
    assert delivery_messages(resources) == []
    # When Lambda retries it, the message goes out
    assert fan_out(stream_event(record), LambdaContext()) == {"batchItemFailures": []}
    assert [m["endpoint_id"] for m in bodies(delivery_messages(resources))] == [endpoint]


def test_status_changes_are_events_and_other_writes_are_not(resources: Resources, fan_out, payout_image) -> None:
    put_endpoint(resources, "user-1")
    submitted = with_changes(payout_image, status="submitted", version=2)
    noted = with_changes(submitted, received_at="2026-01-01T00:00:01.000000Z")
    fan_out(stream_event(stream_record("MODIFY", submitted, payout_image), stream_record("MODIFY", noted, submitted)), LambdaContext())
    assert [e["type"] for e in items_with_prefix(resources, "WHEVT#")] == ["payout.submitted"]
    [message] = bodies(delivery_messages(resources))
    assert json.loads(message["body"])["data"]["object"]["version"] == 2
