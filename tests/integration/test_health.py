from __future__ import annotations

import json

from tests.support import LambdaContext, Resources, load_event


def test_health_is_ok_when_the_table_and_queues_answer(handler_of) -> None:
    handler = handler_of("HealthFunction")
    response = handler(load_event("health/get.json"), LambdaContext())
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["status"] == "ok"
    assert body["checks"]["table"] == "ok"
    assert sum(1 for name in body["checks"] if name.startswith("queue:")) == 3
    assert response["headers"]["x-correlation-id"] == "example-correlation-id"


def test_health_is_503_naming_the_failing_queue(handler_of, resources: Resources) -> None:
    # Given the payment-events queue has gone
    handler = handler_of("HealthFunction")
    resources.client("sqs").delete_queue(QueueUrl=resources.ref("PaymentEventsQueue"))
    # Then health answers 503 and says which check failed
    response = handler(load_event("health/get.json"), LambdaContext())
    assert response["statusCode"] == 503
    checks = json.loads(response["body"])["checks"]
    failing = {name: answer for name, answer in checks.items() if answer != "ok"}
    assert list(failing) == ["queue:" + resources.ref("PaymentEventsQueue").rsplit("/", 1)[-1]]


def test_health_is_503_when_the_table_is_missing(handler_of, resources: Resources) -> None:
    handler = handler_of("HealthFunction")
    resources.client("dynamodb").delete_table(TableName=resources.ref("Table"))
    response = handler(load_event("health/get.json"), LambdaContext())
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["checks"]["table"] != "ok"


def test_an_insane_correlation_id_is_replaced_not_echoed(handler_of) -> None:
    handler = handler_of("HealthFunction")
    event = load_event("health/get.json")
    event["headers"]["x-correlation-id"] = "bad id\r\nSet-Cookie: x=1"
    response = handler(event, LambdaContext())
    assert response["headers"]["x-correlation-id"] == event["requestContext"]["requestId"]
