"""One OpenAPI document for the whole API, merged from every API function's own resolver.

Each function describes its routes with its Powertools resolver; this module imports every
``functions/<name>/app.py`` beside the docs function (as Lambda would, under a name of its own
so two ``app`` modules never collide) and merges their paths and schemas. A route added to any
function therefore appears here with no extra work.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from payrail.http import Problem, problems

TITLE = "Payrail API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Payouts with real idempotency, OpenID Connect sign-in, signed payment webhooks and bank "
    "transaction sync. Errors are RFC 9457 problem documents."
)


# Powertools documents request-validation failures as 422 with its own JSON shape and response
# validation failures with another; payrail.http answers both as problem documents (400 and 500).
_POWERTOOLS_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")


class SchemaConflict(RuntimeError):
    """Two functions describe the same schema name or the same operation differently."""


def _load_resolver(app_file: Path) -> APIGatewayHttpResolver | None:
    spec = importlib.util.spec_from_file_location(f"payrail_docs_{app_file.parent.name}", app_file)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    resolver = getattr(module, "app", None)
    return resolver if isinstance(resolver, APIGatewayHttpResolver) else None


def _merge_into(target: dict[str, Any], addition: dict[str, Any], what: str) -> None:
    for name, value in addition.items():
        if name in target and target[name] != value:
            raise SchemaConflict(f"{what} {name!r} is described differently by two functions")
        target[name] = value


def merged_openapi(functions_root: Path, server_url: str | None = None, extra: Sequence[APIGatewayHttpResolver] = ()) -> dict[str, Any]:
    """The OpenAPI document of every ``functions_root/<name>/app.py`` and of the ``extra`` resolvers."""
    # Imported here, on the first request for the document: the guard is heavy for a cold start.
    from payrail.auth.guard import SECURITY_SCHEMES

    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    security_schemes: dict[str, Any] = {}
    resolvers = [resolver for app_file in sorted(functions_root.glob("*/app.py")) if (resolver := _load_resolver(app_file))]
    for resolver in [*resolvers, *extra]:
        document = resolver.get_openapi_schema(title=TITLE, version=VERSION, security_schemes=SECURITY_SCHEMES).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        for path, operations in document.get("paths", {}).items():
            _merge_into(paths.setdefault(path, {}), operations, f"operation on {path}:")
        components = document.get("components", {})
        _merge_into(schemas, components.get("schemas", {}), "schema")
        _merge_into(security_schemes, components.get("securitySchemes", {}), "security scheme")
    for operations in paths.values():
        for method, operation in operations.items():
            _describe_responses(method, operation)
    for name in _POWERTOOLS_ERROR_SCHEMAS:
        schemas.pop(name, None)
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    _merge_into(schemas, {**problem.pop("$defs", {}), "Problem": problem}, "schema")
    document = {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.items())), "securitySchemes": {**SECURITY_SCHEMES, **security_schemes}},
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document


def _describe_responses(method: str, operation: dict[str, Any]) -> None:
    """What every operation has in common, stated once instead of on every route.

    * A request that fails validation is answered 400 (payrail.http maps Powertools' 422 there),
      a body that is not JSON 415, and an unexpected failure 500, all as problem documents.
    * A route that needs a signed-in user (it has ``security``) can answer 401, and 403 when a
      cookie-authenticated write comes from a foreign Origin.
    * Redirects, 204 and 304 have no body.
    * Every response carries X-Correlation-Id; a 429 also carries Retry-After.
    """
    responses: dict[str, Any] = operation["responses"]
    validation = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if validation.get("$ref", "").endswith("/HTTPValidationError"):
        del responses["422"]
    common = {400: "The request is not valid", 500: "Unexpected failure (quote the correlation id)"}
    if "requestBody" in operation:
        common[415] = "The body is not JSON (Content-Type)"
    if operation.get("security"):
        common[401] = "Missing or invalid credentials"
        if method not in ("get", "head", "options"):
            common[403] = "A cookie-authenticated write from an Origin that is not allowed"
    for code, problem in problems(common).items():
        if str(code) not in responses or code == 500:
            responses[str(code)] = problem
    for status, response in responses.items():
        code = int(status)
        if code in (204, 304) or 300 <= code < 400:
            response.pop("content", None)
        headers = response.setdefault("headers", {})
        headers["X-Correlation-Id"] = {"description": "The request's correlation id", "required": True, "schema": {"type": "string"}}
        if code == 429:
            headers["Retry-After"] = {
                "description": "Seconds to wait",
                "required": True,
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        if 300 <= code < 400 and code != 304:
            headers["Location"] = {"description": "Where to go next", "required": True, "schema": {"type": "string"}}
    operation["responses"] = dict(sorted(responses.items()))


def swagger_page(document: dict[str, Any]) -> str:
    """Swagger UI over ``document``, with its script and styles inline (Powertools ships them) so
    it works offline."""
    # Powertools keeps its Swagger UI renderer and assets in a private-ish module; they are the
    # same files its own enable_swagger() serves, reused here for the merged document.
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import html

    assets = Path(html.__file__).parent
    js = (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8")
    css = (assets / "swagger-ui.min.css").read_text(encoding="utf-8")
    return html.generate_swagger_html(json.dumps(document), js, css, "", None)
