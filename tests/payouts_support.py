"""Helpers for the payouts tests: API Gateway events, tokens, SQS records, the sandbox provider
in-process behind an httpx transport, and table inspection."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

from tests.support import EVENTS, LambdaContext, Resources, function_environment_of

VALID_BODY: dict[str, Any] = {
    "amount": 12550,
    "currency": "ZAR",
    "beneficiary": {"name": "Thandi Nkosi", "account_number": "62001234567", "bank_code": "250655"},
    "reference": "Invoice 1042",
}


def http_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    route: str | None = None,
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, shaped like events/health/get.json."""
    event: dict[str, Any] = json.loads((EVENTS / "health/get.json").read_text())
    route_key = f"{method} {route or path}"
    event.update(
        routeKey=route_key,
        rawPath=path,
        rawQueryString=urlencode(query or {}),
        headers={"host": "127.0.0.1:3000", "content-type": "application/json", **{k.lower(): v for k, v in (headers or {}).items()}},
    )
    if query:
        event["queryStringParameters"] = dict(query)
    if path_parameters:
        event["pathParameters"] = path_parameters
    if raw_body is not None:
        event["body"] = raw_body
    elif body is not None:
        event["body"] = json.dumps(body)
    event["requestContext"] = {
        **event["requestContext"],
        "http": {**event["requestContext"]["http"], "method": method, "path": path},
        "routeKey": route_key,
        "requestId": str(uuid.uuid4()),
    }
    return event


def mint_token(resources: Resources, user_id: str) -> str:
    """An access token for ``user_id`` signed with the stack's session key (what sign-in returns)."""
    from payrail.auth.tokens import issue_access_token
    from payrail.settings import SignedInSettings

    with function_environment_of(resources, "PayoutsApiFunction"):
        return issue_access_token(resources.settings("PayoutsApiFunction", SignedInSettings), user_id, f"session-{user_id}")


def funding_reference_of(resources: Resources, user_id: str) -> str:
    """The user's funding reference, as ``GET /balances`` shows it (the payouts API in-process)."""
    from tests.webhooks_support import InProcess

    api = InProcess(resources, "PayoutsApiFunction")
    token = mint_token(resources, user_id)
    response = api(http_event("GET", "/balances", headers={"authorization": f"Bearer {token}"}))
    assert response["statusCode"] == 200, response
    return str(json.loads(response["body"])["funding_reference"])


def fund(resources: Resources, user_id: str, amount: int, currency: str = "ZAR", event_id: str | None = None) -> str:
    """Credit ``user_id`` the way money arrives: the payment events worker applies a
    ``funding.received`` event naming the user's funding reference (the receiver has verified its
    signature and queued it). Returns the event id."""
    from tests.webhooks_support import InProcess, event_id_of, funding_body
    from tests.webhooks_support import sqs_event as events_batch

    body = funding_body(funding_reference_of(resources, user_id), amount, currency, event_id)
    answer = InProcess(resources, "PaymentEventsWorkerFunction")(events_batch([body]))
    assert answer["batchItemFailures"] == [], answer
    return event_id_of(body)


# What a user is funded with before their payouts (a million rand): far more than a test spends.
FUNDED = 100_000_000


def funded_token(resources: Resources, user_id: str, amount: int = FUNDED, currency: str = VALID_BODY["currency"]) -> str:
    """An access token for ``user_id``, whose balance has been funded first (:func:`fund`)."""
    fund(resources, user_id, amount, currency)
    return mint_token(resources, user_id)


def call(handler: Any, event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    response = handler(event, LambdaContext())
    body = response.get("body")
    return response["statusCode"], {k.lower(): v for k, v in (response.get("headers") or {}).items()}, json.loads(body) if body else None


def all_items(resources: Resources) -> list[dict[str, Any]]:
    """Every item in the table (tests only: a scan)."""
    client = resources.client("dynamodb")
    items, start = [], None
    while True:
        kwargs = {"TableName": resources.ref("Table"), **({"ExclusiveStartKey": start} if start else {})}
        answer = client.scan(**kwargs)
        items += answer["Items"]
        start = answer.get("LastEvaluatedKey")
        if not start:
            return items


def item_keys(resources: Resources) -> set[str]:
    return {item["pk"]["S"] for item in all_items(resources)}


def sqs_event(payout_ids: list[str], receive_count: int = 1, receipts: list[str] | None = None) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": (receipts or [])[i] if receipts else f"receipt-{i}",
                "body": json.dumps({"payout_id": payout_id}),
                "attributes": {
                    "ApproximateReceiveCount": str(receive_count),
                    "SentTimestamp": str(int(time.time() * 1000)),
                    "SenderId": "local",
                    "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
                },
                "messageAttributes": {
                    "correlation_id": {"stringValue": "cid-test", "dataType": "String", "stringListValues": [], "binaryListValues": []}
                },
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:payouts",
                "awsRegion": "us-east-1",
            }
            for i, payout_id in enumerate(payout_ids)
        ]
    }


def in_process_transport(sandbox_handler: Any) -> httpx.MockTransport:
    """An httpx transport that serves requests with the sandbox function in-process, as API
    Gateway would call it. A request that takes longer than the client's read timeout raises
    ``httpx.ReadTimeout`` once the provider is done, so whatever the provider did (it may have
    accepted the payout before "timing out") stays done, as with a real socket."""

    def serve(request: httpx.Request) -> httpx.Response:
        started = time.monotonic()
        response = _serve(request)
        read_timeout = (request.extensions.get("timeout") or {}).get("read")
        if read_timeout is not None and time.monotonic() - started > read_timeout:
            raise httpx.ReadTimeout("the provider did not answer in time", request=request)
        return response

    def _serve(request: httpx.Request) -> httpx.Response:
        event = http_event(
            request.method,
            request.url.path,
            raw_body=request.content.decode() if request.content else None,
            headers=dict(request.headers),
            query=dict(parse_qsl(request.url.query.decode())) or None,
            route="/sandbox/{proxy+}",
        )
        response = sandbox_handler(event, LambdaContext())
        return httpx.Response(response["statusCode"], headers=response.get("headers") or {}, content=(response.get("body") or "").encode())

    return httpx.MockTransport(serve)


def serialise_moto_transactions(monkeypatch: Any) -> None:
    """moto is not isolated: a cancelled TransactWriteItems restores a deep copy of the whole
    table taken before it ran, erasing whatever concurrent requests committed meanwhile (seen
    here as 8 payouts from 32 racing requests, with only one idempotency record left). DynamoDB
    transactions are serialisable; this lock gives moto that one guarantee and nothing more:
    the handlers still race on everything else, and the create path's correctness still rests
    on its conditions and the cancellation reasons."""
    from payrail import aws

    client = aws.client("dynamodb")
    real = client.transact_write_items
    lock = threading.Lock()

    def isolated(**kwargs: Any) -> Any:
        with lock:
            return real(**kwargs)

    monkeypatch.setattr(client, "transact_write_items", isolated)
