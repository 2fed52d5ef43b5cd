"""The sandbox provider's webhooks: events on a delay queue, a sender that moves the provider's
payout and delivers signed POSTs, retried until the receiver answers 2xx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from payrail.db import serialize
from payrail_sandbox.settings import SandboxSettings
from payrail_sandbox.webhooks import DELIVERY_TIME_NEEDED_SECONDS

from tests.support import Resources
from tests.webhooks_support import InProcess, Recorder, drain, get_item, http_request, secrets_of

from payrail.webhooks.signatures import verify_jwt, verify_standard  # isort: skip


@pytest.fixture(scope="module")
def receiver() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def world(moto_endpoint: str, receiver: Recorder) -> dict:
    resources = Resources(moto_endpoint, overrides={"PublicBaseUrl": receiver.url})
    secret, jwt_doc = secrets_of(resources)
    return {
        "resources": resources,
        "sandbox": InProcess(resources, "SandboxFunction"),
        "sender": InProcess(resources, "SandboxWebhookSenderFunction"),
        "secret": secret,
        "jwt_keys": {k: v for k, v in jwt_doc.items() if k != "active_kid"},
    }


@pytest.fixture
def fresh(world: dict, receiver: Recorder) -> dict:
    drain(world["resources"], "SandboxWebhooksQueue")
    receiver.requests.clear()
    receiver.codes.clear()
    configure(world, enabled=True, delay_seconds=0, failure_rate=0, scheme="standard")
    return world


def configure(world: dict, **config: object) -> dict:
    response = world["sandbox"](http_request("PUT", "/sandbox/payments/webhooks", config))
    assert response["statusCode"] == 200, response["body"]
    return json.loads(response["body"])


def provider_payout(world: dict, payout_id: str = "po_sandbox_1", status: str = "accepted") -> str:
    """A payout the sandbox provider accepted, in its own layout (as the payouts feature stores it)."""
    provider_id = f"pp_{payout_id}"
    item = {
        "pk": f"SANDBOX#payments#PAYOUT#{provider_id}",
        "sk": "PAYOUT",
        "id": provider_id,
        "idempotency_key": payout_id,
        "status": status,
        "amount": 100,
        "currency": "ZAR",
        "metadata": {"payout_id": payout_id},
    }
    world["resources"].client("dynamodb").put_item(TableName=world["resources"].ref("Table"), Item=serialize(item))
    return provider_id


def provider_status(world: dict, provider_id: str) -> str:
    item = get_item(world["resources"], {"pk": f"SANDBOX#payments#PAYOUT#{provider_id}", "sk": "PAYOUT"})
    assert item is not None
    return str(item["status"])


def trigger(world: dict, provider_id: str, event_type: str) -> dict:
    response = world["sandbox"](http_request("POST", f"/sandbox/payments/v1/payouts/{provider_id}/events", {"type": event_type}))
    assert response["statusCode"] == 202, response["body"]
    return json.loads(response["body"])


def send_queued(world: dict, remaining_ms: int | None = None) -> list[str]:
    """Run the sender on what is queued (with its whole timeout left, or ``remaining_ms``); returns the failed message ids."""
    messages = drain(world["resources"], "SandboxWebhooksQueue")
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0", "SenderId": "x", "ApproximateFirstReceiveTimestamp": "0"},
            "messageAttributes": {
                name: {"stringValue": value["StringValue"], "dataType": "String", "stringListValues": [], "binaryListValues": []}
                for name, value in m.get("MessageAttributes", {}).items()
            },
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
            "awsRegion": "us-east-1",
        }
        for m in messages
    ]
    answer = world["sender"]({"Records": records}, remaining_ms)
    return [f["itemIdentifier"] for f in answer["batchItemFailures"]]


def test_a_triggered_event_is_delivered_signed_and_moves_the_providers_payout(fresh: dict, receiver: Recorder) -> None:
    provider_id = provider_payout(fresh, "po_sb_1")

    emitted = trigger(fresh, provider_id, "payout.paid")
    assert send_queued(fresh) == []

    [post] = receiver.posts()
    assert post["path"] == "/webhooks/payments"
    assert verify_standard(post["headers"], post["body"], [fresh["secret"]], time.time()) == emitted["id"]
    document = json.loads(post["body"])
    assert (document["id"], document["type"]) == (emitted["id"], "payout.paid")
    assert document["data"] == {"payout_id": "po_sb_1", "provider_reference": provider_id, "failure_reason": None}
    assert provider_status(fresh, provider_id) == "paid"


def test_an_event_reached_without_the_time_to_deliver_it_is_not_started(fresh: dict, receiver: Recorder) -> None:
    provider_id = provider_payout(fresh, "po_sb_late")
    emitted = trigger(fresh, provider_id, "payout.paid")
    # When the sender reaches it with less of the invocation left than a delivery may take
    failed = send_queued(fresh, remaining_ms=int(DELIVERY_TIME_NEEDED_SECONDS * 1000) - 1)
    # Then its record fails at once, with nothing posted and nothing moved, for SQS to offer it again
    assert len(failed) == 1
    assert receiver.posts() == []
    assert provider_status(fresh, provider_id) == "accepted"
    event = get_item(fresh["resources"], {"pk": f"SANDBOX#payments#EVENT#{emitted['id']}", "sk": "EVENT"})
    assert event is not None
    assert (event["state"], event["attempts"]) == ("scheduled", 0)


def test_the_jwt_scheme_signs_with_a_bearer_token_bound_to_the_body(fresh: dict, receiver: Recorder) -> None:
    configure(fresh, enabled=True, delay_seconds=0, failure_rate=0, scheme="jwt")
    provider_id = provider_payout(fresh, "po_sb_2")

    emitted = trigger(fresh, provider_id, "payout.processing")
    send_queued(fresh)

    [post] = receiver.posts()
    claims = verify_jwt(post["headers"]["authorization"], post["body"], fresh["jwt_keys"], time.time())
    assert claims["jti"] == emitted["id"]
    assert "webhook-signature" not in post["headers"]


def test_a_delivery_the_receiver_refuses_fails_its_record_and_succeeds_on_the_retry(fresh: dict, receiver: Recorder) -> None:
    provider_id = provider_payout(fresh, "po_sb_3")
    receiver.codes.extend([500])
    emitted = trigger(fresh, provider_id, "payout.paid")
    message = drain(fresh["resources"], "SandboxWebhooksQueue")
    body = message[0]["Body"]

    # When the receiver answers 500, the record fails (SQS will deliver it again)
    fresh["resources"].client("sqs").send_message(QueueUrl=fresh["resources"].ref("SandboxWebhooksQueue"), MessageBody=body)
    assert len(send_queued(fresh)) == 1
    # and the retry, answered 202, succeeds
    fresh["resources"].client("sqs").send_message(QueueUrl=fresh["resources"].ref("SandboxWebhooksQueue"), MessageBody=body)
    assert send_queued(fresh) == []

    events = json.loads(fresh["sandbox"](http_request("GET", f"/sandbox/payments/v1/payouts/{provider_id}/events"))["body"])["items"]
    assert [(e["id"], e["state"], e["attempts"]) for e in events] == [(emitted["id"], "delivered", 2)]
    assert len(receiver.posts()) == 2


def test_with_deliveries_switched_off_the_provider_still_progresses_but_posts_nothing(fresh: dict, receiver: Recorder) -> None:
    configure(fresh, enabled=False, delay_seconds=0, failure_rate=0, scheme="standard")
    provider_id = provider_payout(fresh, "po_sb_4")

    trigger(fresh, provider_id, "payout.processing")
    assert send_queued(fresh) == []

    assert receiver.posts() == []
    assert provider_status(fresh, provider_id) == "processing"


def test_a_redelivery_sends_the_same_event_again_without_moving_the_provider_back(fresh: dict, receiver: Recorder) -> None:
    provider_id = provider_payout(fresh, "po_sb_5")
    processing = trigger(fresh, provider_id, "payout.processing")
    send_queued(fresh)
    trigger(fresh, provider_id, "payout.paid")
    send_queued(fresh)

    response = fresh["sandbox"](http_request("POST", f"/sandbox/payments/v1/events/{processing['id']}/redeliver"))
    assert response["statusCode"] == 202
    send_queued(fresh)

    first, _, again = receiver.posts()
    assert again["body"] == first["body"]
    assert again["headers"]["webhook-id"] == processing["id"]
    assert provider_status(fresh, provider_id) == "paid"


def test_the_provider_never_moves_backwards_even_for_a_triggered_event(fresh: dict) -> None:
    provider_id = provider_payout(fresh, "po_sb_6", status="failed")

    trigger(fresh, provider_id, "payout.paid")
    send_queued(fresh)

    assert provider_status(fresh, provider_id) == "failed"


def test_unknown_payouts_and_events_are_404(fresh: dict) -> None:
    missing_payout = fresh["sandbox"](http_request("POST", "/sandbox/payments/v1/payouts/pp_nope/events", {"type": "payout.paid"}))
    missing_event = fresh["sandbox"](http_request("POST", "/sandbox/payments/v1/events/evt_nope/redeliver"))

    assert (missing_payout["statusCode"], missing_event["statusCode"]) == (404, 404)
    assert drain(fresh["resources"], "SandboxWebhooksQueue") == []


def test_an_accepted_payout_gets_processing_then_its_final_event_on_the_delay_queue(fresh: dict) -> None:
    from payrail_sandbox.webhooks import schedule_payout_events

    configure(fresh, enabled=True, delay_seconds=0, failure_rate=1, scheme="standard")
    provider_id = provider_payout(fresh, "po_sb_7")
    item = get_item(fresh["resources"], {"pk": f"SANDBOX#payments#PAYOUT#{provider_id}", "sk": "PAYOUT"})

    with fresh["sandbox"].environment():
        event_ids = schedule_payout_events(fresh["resources"].settings("SandboxFunction", SandboxSettings), item)

    events = json.loads(fresh["sandbox"](http_request("GET", f"/sandbox/payments/v1/payouts/{provider_id}/events"))["body"])["items"]
    assert [(e["id"], e["type"]) for e in events] == list(zip(event_ids, ["payout.processing", "payout.failed"], strict=True))
    assert sorted(json.loads(m["Body"])["event_id"] for m in drain(fresh["resources"], "SandboxWebhooksQueue")) == sorted(event_ids)


def test_the_final_event_waits_twice_as_long_as_processing(fresh: dict) -> None:
    from payrail_sandbox.webhooks import schedule_payout_events

    configure(fresh, enabled=True, delay_seconds=1, failure_rate=0, scheme="standard")
    provider_id = provider_payout(fresh, "po_sb_8")
    item = get_item(fresh["resources"], {"pk": f"SANDBOX#payments#PAYOUT#{provider_id}", "sk": "PAYOUT"})
    with fresh["sandbox"].environment():
        processing, final = schedule_payout_events(fresh["resources"].settings("SandboxFunction", SandboxSettings), item)

    assert drain(fresh["resources"], "SandboxWebhooksQueue") == []
    time.sleep(1.2)
    assert [json.loads(m["Body"])["event_id"] for m in drain(fresh["resources"], "SandboxWebhooksQueue")] == [processing]
    time.sleep(1.0)
    assert [json.loads(m["Body"])["event_id"] for m in drain(fresh["resources"], "SandboxWebhooksQueue")] == [final]
