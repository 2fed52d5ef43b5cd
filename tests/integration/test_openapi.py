"""One OpenAPI document for every route, and no route the template and the code disagree on."""

from __future__ import annotations

import json
import re

from devstack.gateway import Router, route
from tests.support import LambdaContext, Resources, load_event

DOC_ROUTES = {("GET", "/openapi.json"), ("GET", "/docs")}


def _template_routes(resources: Resources) -> set[tuple[str, str]]:
    return {
        (properties["Method"].upper(), properties["Path"])
        for spec in resources.functions.values()
        for properties in spec.events_of("HttpApi").values()
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
