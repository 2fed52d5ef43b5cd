"""The HTTP side shared by every API function.

* :func:`create_app` builds the Powertools resolver with request validation and maps every
  error, once, to an RFC 9457 problem document.
* :func:`api_handler` is the decorator stack of every API ``lambda_handler``: logger, metrics,
  tracer, the correlation id, which is echoed on every response, and the security headers every
  response carries (:func:`with_security_headers`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType, RequestValidationError
from aws_lambda_powertools.shared.cookies import Cookie
from pydantic import BaseModel, ConfigDict, Field

from payrail.errors import PayrailError, RateLimited, ValidationFailed
from payrail.observability import (
    CORRELATION_HEADER,
    correlation_id,
    logger,
    metrics,
    new_correlation_id,
    sane_correlation_id,
    set_correlation_id,
    tracer,
)
from payrail.settings import REQUEST_ORIGIN

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:payrail:problem:"
PROBLEM_SCHEMA_REF = {"$ref": "#/components/schemas/Problem"}
NO_STORE = {"Cache-Control": "no-store"}
# On every response, whatever function, route or status (api_handler adds them): browsers only
# ever reach the API over HTTPS (two years, subdomains included), and never sniff a body into
# another type than its Content-Type says.
SECURITY_HEADERS = {"Strict-Transport-Security": "max-age=63072000; includeSubDomains", "X-Content-Type-Options": "nosniff"}
# A response that says nothing about caching is not cached anywhere: authenticated JSON carries
# account numbers and tokens, problem documents and redirects describe one request. Only the
# public static routes that name their own Cache-Control (the console's page and versioned
# assets, the OpenAPI document and its Swagger page) are cacheable; none of them holds user data.
DEFAULT_CACHE_CONTROL = "no-store"
# How deep a request body may nest. No body this API takes goes beyond three levels; the JSON
# parser itself recurses, so a body thousands of levels deep would fail it with a RecursionError.
MAX_BODY_DEPTH = 32
# What an id in a path or query looks like (payouts' po_..., connections' conn_...): anything else
# is refused as invalid before any lookup.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# A list's cursor is unpadded base64url (payrail.db.encode_cursor), so anything else is refused
# before it is decoded.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"


class FieldError(BaseModel):
    in_: str = Field(alias="in", description="body, query, path, header or cookie")
    field: str
    message: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document: the body of every error response."""

    model_config = ConfigDict(extra="allow", title="Problem")
    type: str = Field(description=f"A URN under {PROBLEM_TYPE_PREFIX}")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    correlation_id: str
    errors: list[FieldError] | None = Field(default=None, description="Field-level failures, for 400")


LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> Response:
    """An ``application/problem+json`` response carrying the request's correlation id."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "correlation_id": correlation_id(),
    }
    headers: dict[str, str] = {}
    retry_after = extra.pop("retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    body.update({key: value for key, value in extra.items() if value is not None})
    return Response(status_code=status, content_type=PROBLEM_JSON, body=json.dumps(body), headers=headers)


def problems(described: Mapping[int, str]) -> dict[int, Any]:
    """OpenAPI ``responses`` entries for the error statuses a route can answer, each a problem
    document: ``responses={200: {...}, **problems({404: "No such payout"})}``."""
    return {
        status: {"description": description, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA_REF}}}
        for status, description in described.items()
    }


def redirect(location: str, cookies: list[Cookie] | None = None) -> Response:
    """302 to ``location``, never cached (sign-in and bank-linking redirects carry one-time state)."""
    return Response(302, "text/plain", "", headers={"Location": location, **NO_STORE}, cookies=cookies or [])


def wants_json(app: APIGatewayHttpResolver) -> bool:
    """Whether the current request asked for JSON instead of a redirect (``Accept``)."""
    return "application/json" in (app.current_event.headers or {}).get("accept", "")


def json_response(payload: BaseModel | Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response; the resolver validates and serialises ``payload`` against the route's
    declared ``Response[Model]``."""
    return Response(status_code=status, content_type="application/json", body=payload, headers=dict(headers or {}))


def _field_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    shaped = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        shaped.append(
            {
                "in": location[0] if location else "body",
                "field": ".".join(location[1:]),
                "message": error.get("msg", "invalid"),
                "type": error.get("type", "value_error"),
            }
        )
    return shaped


class _JsonObjectBodies(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, taking a body only as a JSON object.

    * Powertools also parses form and multipart bodies into the model, and fails with a 500 on a
      multipart type without a boundary; this API speaks JSON only, so any other type is a 415.
    * Powertools unwraps a list to its first element for any non-list parameter (meant for
      repeated query parameters) and does so for the body too: ``[{...a payout...}]`` would be
      accepted as the payout and ``[null]`` as no body at all.

    * The JSON parser recurses into nested arrays and objects and raises RecursionError (not a
      decoding error, so Powertools lets it through) for a body a few thousand levels deep; a
      body nested deeper than MAX_BODY_DEPTH is a 400 before anything else sees it.
    """

    def _get_body(self, app: Any) -> dict[str, Any]:
        content_type = (app.current_event.headers or {}).get("content-type", "").strip()
        if content_type and not _JSON_TYPE.match(content_type):
            raise RequestUnsupportedContentType("Unsupported content type", errors=[])
        try:
            body = super()._get_body(app)
        except RecursionError:
            raise _too_deep() from None
        if nesting_depth(body, MAX_BODY_DEPTH) > MAX_BODY_DEPTH:
            raise _too_deep()
        if body is not None and not isinstance(body, dict):
            raise RequestValidationError(
                [{"loc": ("body",), "msg": "The body must be a JSON object", "type": "model_attributes_type", "input": None}]
            )
        return body


def _too_deep() -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body",), "msg": f"The body nests deeper than {MAX_BODY_DEPTH} levels", "type": "json_depth", "input": None}]
    )


def nesting_depth(value: Any, stop_above: int) -> int:
    """How deep ``value`` nests lists and dicts (a scalar is 0), walked without recursion and
    given up as soon as it exceeds ``stop_above``."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        current, depth = pending.pop()
        if isinstance(current, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > stop_above:
                return deepest
            children = current.values() if isinstance(current, dict) else current
            pending.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


_JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json\s*(?:;|$)", re.IGNORECASE)


def create_app(*, strip_prefixes: list[str] | None = None) -> APIGatewayHttpResolver:
    """A resolver whose every failure is a problem document and never a stack trace."""
    # A response that does not match its route's declared model is the service's bug: 500, not 400.
    app = APIGatewayHttpResolver(
        enable_validation=True,
        response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR,
        strip_prefixes=strip_prefixes,  # type: ignore[arg-type]
    )
    app._request_validation_middleware = _JsonObjectBodies()

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported_body(_: RequestUnsupportedContentType) -> Response:
        content_type = (app.current_event.headers or {}).get("content-type", "")
        return problem(
            415, "unsupported-media-type", "Unsupported media type", f"Send the body as application/json, not {content_type[:80]}."
        )

    @app.exception_handler(RequestValidationError)
    def _invalid_request(error: RequestValidationError) -> Response:
        return problem(
            400,
            ValidationFailed.slug,
            ValidationFailed.title,
            "One or more fields are invalid.",
            errors=_field_errors(list(error.errors())),
        )

    @app.exception_handler(PayrailError)
    def _payrail_error(error: PayrailError) -> Response:
        if error.status >= 500:
            logger.warning("request failed on a dependency", extra={"error": error.detail})
        extra: dict[str, Any] = dict(error.extra)
        if isinstance(error, ValidationFailed) and error.errors:
            extra["errors"] = error.errors
        if isinstance(error, RateLimited):
            extra["retry_after"] = error.retry_after
        return problem(error.status, error.slug, error.title, error.detail, **extra)

    @app.not_found
    def _not_found(_: NotFoundError) -> Response:
        event = app.current_event
        return unrouted(event.request_context.http.method, event.path, documented_routes(app))

    @app.exception_handler(Exception)
    def _unexpected(_: Exception) -> Response:
        logger.exception("unhandled error")
        return problem(500, "internal-error", "Internal error", "An unexpected error occurred; quote the correlation id when reporting it.")

    return app


def documented_routes(app: APIGatewayHttpResolver) -> dict[str, list[str]]:
    """``{openapi path: [METHOD, ...]}`` of the resolver's routes, built once (on its first 404)."""
    routes: dict[str, list[str]] | None = getattr(app, "_payrail_routes", None)
    if routes is None:
        from payrail.auth.guard import SECURITY_SCHEMES  # only on a 404: the guard is heavy to import

        schema = app.get_openapi_schema(security_schemes=SECURITY_SCHEMES).model_dump(by_alias=True, exclude_none=True)
        routes = methods_by_path(schema.get("paths", {}))
        app._payrail_routes = routes  # type: ignore[attr-defined]
    return routes


def methods_by_path(paths: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """An OpenAPI ``paths`` object as ``{path: [METHOD, ...]}``, for :func:`unrouted`."""
    return {path: [method.upper() for method in item if method in _HTTP_METHODS] for path, item in paths.items()}


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def unrouted(method: str, path: str, routes: Mapping[str, list[str]]) -> Response:
    """The answer to a request no route takes: 405 with ``Allow`` when the path exists under
    other methods, else 404; both problem documents."""
    allowed = sorted({m for template, methods in routes.items() if _path_pattern(template).match(path) for m in methods})
    if allowed and method.upper() not in allowed:
        response = problem(405, "method-not-allowed", "Method not allowed", f"{path} answers {', '.join(allowed)}, not {method}.")
        response.headers["Allow"] = ", ".join(allowed)
        return response
    return problem(404, "not-found", "Not found", f"No route for {method} {path}.")


@functools.cache
def _path_pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")


def _request_correlation_id(event: Mapping[str, Any]) -> str:
    headers = event.get("headers") or {}
    from_header = sane_correlation_id(headers.get(CORRELATION_HEADER))
    if from_header:
        return from_header
    request_id = (event.get("requestContext") or {}).get("requestId")
    return sane_correlation_id(request_id) or new_correlation_id()


def with_security_headers(response: dict[str, Any]) -> dict[str, Any]:
    """``response`` (a Lambda proxy result) with SECURITY_HEADERS, replacing any spelling of them
    a route set, and ``Cache-Control: no-store`` unless the route chose its own caching."""
    headers: dict[str, str] = response.setdefault("headers", {})
    present = {name.lower(): name for name in headers}
    for name, value in SECURITY_HEADERS.items():
        headers.pop(present.pop(name.lower(), name), None)
        headers[name] = value
    if "cache-control" not in present:
        headers["Cache-Control"] = DEFAULT_CACHE_CONTROL
    return response


def request_origin(event: Mapping[str, Any]) -> str:
    """``https://`` + the domain API Gateway received the request on (its execute-api domain or a
    custom domain), from the request context, which API Gateway writes and the client cannot.
    API Gateway serves HTTPS only. Empty when the event names no domain."""
    domain = (event.get("requestContext") or {}).get("domainName") or ""
    return f"https://{domain}" if _DOMAIN.fullmatch(domain) else ""


_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?")


def api_handler(handler: LambdaHandler) -> LambdaHandler:
    """Logger, metrics and tracer around an API Gateway handler, and the correlation id on every response."""

    @functools.wraps(handler)
    def with_correlation_id(event: dict[str, Any], context: Any) -> dict[str, Any]:
        cid = _request_correlation_id(event)
        set_correlation_id(cid)
        # The key of this request's line in the API's access log, also when the client chose the correlation id.
        logger.append_keys(api_request_id=(event.get("requestContext") or {}).get("requestId"))
        # API Gateway passes rawPath as the client wrote it, percent-encoding included, and
        # Powertools takes path parameters from it as they are: "/payouts/po%5F1" would look up
        # "po%5F1" and be validated at three times its length. Decode it once, as API Gateway
        # decodes pathParameters, before the resolver routes on it.
        if "%" in event.get("rawPath", ""):
            event = {**event, "rawPath": unquote(event["rawPath"])}
        origin = REQUEST_ORIGIN.set(request_origin(event))
        try:
            response = with_security_headers(handler(event, context))
        finally:
            REQUEST_ORIGIN.reset(origin)
        response["headers"][CORRELATION_HEADER] = cid
        return response

    decorated = tracer.capture_lambda_handler(with_correlation_id)
    decorated = metrics.log_metrics(decorated, capture_cold_start_metric=True)
    return logger.inject_lambda_context(decorated, clear_state=True)
