from __future__ import annotations

import json
import logging

import pytest

from tests.support import LambdaContext, Resources, load_event


def test_health_is_ok_when_the_table_and_queues_answer(handler_of) -> None:
    handler = handler_of("HealthFunction")
    response = handler(load_event("health/get.json"), LambdaContext())
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body == {"status": "ok", "checks": {"table": "ok", "queues": "ok"}}
    assert response["headers"]["x-correlation-id"] == "example-correlation-id"


def test_health_is_503_degraded_naming_no_queue_and_logging_which_failed(
    handler_of, resources: Resources, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the payment-events queue has gone
    handler = handler_of("HealthFunction")
    queue_name = resources.ref("PaymentEventsQueue").rsplit("/", 1)[-1]
    resources.client("sqs").delete_queue(QueueUrl=resources.ref("PaymentEventsQueue"))
    caplog.set_level(logging.INFO)
    # Then health answers 503 degraded, saying only that a queue fails
    response = handler(load_event("health/get.json"), LambdaContext())
    assert response["statusCode"] == 503
    assert json.loads(response["body"]) == {"status": "degraded", "checks": {"table": "ok", "queues": "failing"}}
    assert queue_name not in response["body"]
    assert "SQS" not in response["body"]
    # And the log says which queue and what it answered
    [failing] = [record for record in caplog.records if record.getMessage() == "health check failing"]
    assert failing.failures == {f"queue:{queue_name}": "SQS GetQueueAttributes failed: AWS.SimpleQueueService.NonExistentQueue"}  # type: ignore[attr-defined]


def test_health_is_503_when_the_table_is_missing(handler_of, resources: Resources) -> None:
    handler = handler_of("HealthFunction")
    resources.client("dynamodb").delete_table(TableName=resources.ref("Table"))
    response = handler(load_event("health/get.json"), LambdaContext())
    assert response["statusCode"] == 503
    assert json.loads(response["body"]) == {"status": "degraded", "checks": {"table": "failing", "queues": "ok"}}


def test_an_insane_correlation_id_is_replaced_not_echoed(handler_of) -> None:
    handler = handler_of("HealthFunction")
    event = load_event("health/get.json")
    event["headers"]["x-correlation-id"] = "bad id\r\nSet-Cookie: x=1"
    response = handler(event, LambdaContext())
    assert response["headers"]["x-correlation-id"] == event["requestContext"]["requestId"]
