"""Every failure becomes an RFC 9457 problem document, mapped once."""

from __future__ import annotations

import io
import json
import logging

import pytest
from payrail.errors import Conflict, DependencyFailure, NotFound, RateLimited, Unauthorized
from payrail.http import api_handler, create_app
from pydantic import BaseModel, Field

from tests.support import LambdaContext

app = create_app()


class Body(BaseModel):
    amount: int = Field(gt=0, strict=True)


@app.post("/things")
def create(body: Body) -> dict:
    return {"amount": body.amount}


@app.get("/fail/<kind>")
def fail(kind: str) -> dict:
    errors = {
        "missing": NotFound("No such thing."),
        "conflict": Conflict("It changed."),
        "limited": RateLimited("Slow down.", retry_after=7),
        "auth": Unauthorized("Who are you?"),
        "dependency": DependencyFailure("DynamoDB answered ThrottlingException"),
        "bug": ZeroDivisionError("division by zero"),
    }
    raise errors[kind]


@app.get("/broken")
def broken() -> Body:
    return {"amount": "not a number"}  # type: ignore[return-value]


@api_handler
def handler(event, context):
    return app.resolve(event, context)


def _event(method: str, path: str, body: str | None = None) -> dict:
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": method, "path": path, "sourceIp": "127.0.0.1"}, "requestId": "req-1", "stage": "$default"},
        "body": body,
        "isBase64Encoded": False,
    }


@pytest.mark.parametrize(
    ("kind", "status"),
    [("missing", 404), ("conflict", 409), ("limited", 429), ("auth", 401), ("dependency", 503), ("bug", 500)],
)
def test_errors_become_problem_documents(kind: str, status: int) -> None:
    response = handler(_event("GET", f"/fail/{kind}"), LambdaContext())
    assert response["statusCode"] == status
    assert response["headers"]["Content-Type"] == "application/problem+json"
    problem = json.loads(response["body"])
    assert problem["status"] == status
    assert problem["type"].startswith("urn:payrail:problem:")
    assert problem["title"]
    assert problem["detail"]
    assert problem["correlation_id"] == "req-1" == response["headers"]["x-correlation-id"]


def test_an_unexpected_error_reveals_nothing_of_its_cause() -> None:
    response = handler(_event("GET", "/fail/bug"), LambdaContext())
    assert "division" not in response["body"]
    assert "Traceback" not in response["body"]


def test_rate_limited_carries_retry_after() -> None:
    response = handler(_event("GET", "/fail/limited"), LambdaContext())
    assert response["headers"]["Retry-After"] == "7"


@pytest.mark.parametrize("body", ['{"amount": 1.5}', '{"amount": "12"}', '{"amount": 0}', "{}", "not json", None])
def test_invalid_bodies_are_400_with_field_errors(body: str | None) -> None:
    response = handler(_event("POST", "/things", body), LambdaContext())
    assert response["statusCode"] == 400
    problem = json.loads(response["body"])
    assert problem["type"] == "urn:payrail:problem:validation-error"
    assert problem["errors"]
    assert all({"in", "field", "message"} <= set(e) for e in problem["errors"])


def test_a_valid_body_passes() -> None:
    response = handler(_event("POST", "/things", '{"amount": 12550}'), LambdaContext())
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"amount": 12550}


def test_unknown_route_is_a_404_problem() -> None:
    response = handler(_event("GET", "/nowhere"), LambdaContext())
    assert response["statusCode"] == 404
    assert json.loads(response["body"])["type"] == "urn:payrail:problem:not-found"


def test_a_response_that_breaks_its_own_model_is_a_500_not_the_clients_fault() -> None:
    response = handler(_event("GET", "/broken"), LambdaContext())
    assert response["statusCode"] == 500
    assert json.loads(response["body"])["type"] == "urn:payrail:problem:internal-error"


def test_every_log_line_of_a_request_names_its_api_request_id_beside_a_client_chosen_correlation_id() -> None:
    from payrail.observability import logger

    # Given a client that chose its own correlation id (so the API's access log line, keyed by
    # requestId, cannot carry it)
    event = _event("GET", "/fail/bug")
    event["headers"]["x-correlation-id"] = "client-chosen-1"
    stream = io.StringIO()
    listener = logging.StreamHandler(stream)
    listener.setFormatter(logger.registered_formatter)
    logging.getLogger(logger.name).addHandler(listener)
    try:
        # When the request fails and is logged
        handler(event, LambdaContext())
    finally:
        logging.getLogger(logger.name).removeHandler(listener)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    # Then its log lines carry both ids, joining the access log to the function's logs
    assert lines
    assert {(line.get("correlation_id"), line.get("api_request_id")) for line in lines} == {("client-chosen-1", "req-1")}
