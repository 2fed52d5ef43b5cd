"""One OpenAPI document for every route, and no route the template and the code disagree on."""

from __future__ import annotations

import json
import os
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from payrail.payouts.models import PayoutRequest
from pydantic import ValidationError
from schemathesis.config import SchemathesisConfig

from devstack.gateway import Router, route
from fuzz.hooks import filter_body
from tests.payouts_support import call, http_event
from tests.support import LambdaContext, Resources, function_environment_of, load_event, load_function

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
DOC_ROUTES = {("GET", "/openapi.json"), ("GET", "/docs")}


def _template_routes(resources: Resources) -> set[tuple[str, str]]:
    """Every route but $default (an HttpApi event with neither Path nor Method)."""
    return {
        (properties["Method"].upper(), properties["Path"])
        for spec in resources.functions.values()
        for properties in spec.events_of("HttpApi").values()
        if "Path" in properties
    }


def _document(handler_of) -> dict:
    response = handler_of("ApiDocsFunction")(load_event("api_docs/openapi.json"), LambdaContext())
    assert response["statusCode"] == 200
    return json.loads(response["body"])


def test_the_merged_document_and_the_template_agree_on_every_route(handler_of, resources: Resources) -> None:
    document = _document(handler_of)
    documented = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}
    template_routes = _template_routes(resources) - DOC_ROUTES
    # Every route the template declares by name is documented ...
    assert {r for r in template_routes if "+}" not in r[1]} <= documented
    # ... and every documented operation is served by a template route (a greedy one may serve many).
    router = Router([route(method, path, "f") for method, path in template_routes])
    concrete = {(method, re.sub(r"\{[^}]+\}", "x", path)) for method, path in documented}
    assert all(router.match(method, path) for method, path in concrete), sorted(concrete)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Payrail API"


def test_every_operation_has_a_summary(handler_of) -> None:
    for path, operations in _document(handler_of)["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method.upper()} {path}"


def test_swagger_ui_is_served_with_the_document_inline(handler_of) -> None:
    event = load_event("api_docs/openapi.json", rawPath="/docs", routeKey="GET /docs")
    event["requestContext"] = {**event["requestContext"], "http": {**event["requestContext"]["http"], "path": "/docs"}}
    response = handler_of("ApiDocsFunction")(event, LambdaContext())
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"].startswith("text/html")
    assert "SwaggerUIBundle" in response["body"]
    assert re.search(r'"/health"', response["body"])


def _operations(document: dict):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield f"{method.upper()} {path}", operation


def test_every_error_is_documented_as_a_problem_and_every_response_with_its_correlation_id(handler_of) -> None:
    document = _document(handler_of)
    assert document["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status", "detail", "correlation_id"]
    for name, operation in _operations(document):
        responses = operation["responses"]
        # Request validation answers 400, never Powertools' own 422 shape.
        assert "400" in responses, name
        assert "500" in responses, name
        assert "HTTPValidationError" not in json.dumps(responses), name
        for status, response in responses.items():
            assert response["headers"]["X-Correlation-Id"]["required"] is True, (name, status)
            if int(status) >= 400 and name != "GET /health" and not name.startswith(("GET /sandbox/", "POST /sandbox/", "PUT /sandbox/")):
                assert response["content"] == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}, (
                    name,
                    status,
                )
            if status == "429":
                assert response["headers"]["Retry-After"]["required"] is True, name
            if status in ("204", "302", "304"):
                assert "content" not in response, (name, status)


def test_routes_that_need_a_user_say_so_and_document_401(handler_of) -> None:
    operations = dict(_operations(_document(handler_of)))
    protected = {name for name, operation in operations.items() if operation.get("security")}
    assert protected == {
        "GET /auth/me",
        "GET /bank/connect",
        "GET /bank/connections",
        "POST /bank/connections/{connection_id}/sync",
        "GET /bank/transactions",
        "GET /payouts",
        "POST /payouts",
        "GET /payouts/{payout_id}",
        "GET /balances",
        "GET /balances/{currency}/ledger",
        "POST /webhook-endpoints",
        "GET /webhook-endpoints",
        "GET /webhook-endpoints/{endpoint_id}",
        "PATCH /webhook-endpoints/{endpoint_id}",
        "DELETE /webhook-endpoints/{endpoint_id}",
        "POST /webhook-endpoints/{endpoint_id}/rotate-secret",
        "GET /webhook-endpoints/{endpoint_id}/deliveries",
        "POST /webhook-endpoints/{endpoint_id}/events/{event_id}/redeliver",
    }
    for name in protected:
        assert operations[name]["security"] == [{"bearerAuth": []}, {"sessionCookie": []}]
        assert "401" in operations[name]["responses"], name
    assert "403" in operations["POST /payouts"]["responses"]


def test_the_sandbox_is_documented_only_where_it_is_deployed(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
    with function_environment_of(resources, "ApiDocsFunction"):
        # The dev stage (samconfig's dev values) deploys the sandbox and documents it ...
        assert os.environ["DOCUMENT_SANDBOX"] == "true"
        assert any(path.startswith("/sandbox/") for path in load_function(resources, "ApiDocsFunction").document()["paths"])
        # ... other stages do not.
        monkeypatch.setenv("DOCUMENT_SANDBOX", "false")
        paths = load_function(resources, "ApiDocsFunction").document()["paths"]
    assert "/payouts" in paths
    assert not any(path.startswith("/sandbox/") for path in paths)


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("TRACE", "/health", 405, "GET"),
        ("DELETE", "/payouts/po_123", 405, "GET"),
        ("PUT", "/payouts", 405, "GET, POST"),
        ("GET", "/no/such/thing", 404, None),
        ("POST", "/payouts/po_123/cancel", 404, None),
    ],
)
def test_a_request_no_route_takes_is_a_404_or_405_problem(handler_of, method: str, path: str, status: int, allow: str | None) -> None:
    # The docs function is also API Gateway's $default route, which gets every unmatched request.
    event = http_event(method, path)
    event["routeKey"] = "$default"
    answer, headers, body = call(handler_of("ApiDocsFunction"), event)
    assert (answer, headers.get("content-type"), body["status"]) == (status, "application/problem+json", status)
    assert headers.get("allow") == allow


def test_every_payout_body_the_fuzzer_draws_as_valid_is_one_the_api_accepts(handler_of) -> None:
    # Given the published document, read the way the API fuzzer (Schemathesis) reads it
    document = _document(handler_of)
    operation = schemathesis.openapi.from_dict(document, config=SchemathesisConfig())["/payouts"]["POST"]
    refused: list[str] = []

    # When it draws bodies it believes valid (minus integral floats, which fuzz/hooks.py says why it drops)
    @settings(max_examples=150, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy())
    def draw(case: schemathesis.Case) -> None:
        if not filter_body(None, case.body):
            return
        try:
            PayoutRequest.model_validate_json(json.dumps(case.body))
        except ValidationError as error:
            refused.extend(f"{'.'.join(map(str, e['loc']))}: {e['msg']} ({e.get('input')!r:.60})" for e in error.errors())

    draw()
    # Then the API accepts every one: the text pattern means the same to the fuzzer as to pydantic
    # (spelling U+0080 to U+009F as \u0080-\u009f inside a class made the fuzzer draw them)
    assert refused == []
