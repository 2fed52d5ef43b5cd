"""The HTTP side shared by every API function.

* :func:`create_app` builds the Powertools resolver with request validation and maps every
  error, once, to an RFC 9457 problem document.
* :func:`api_handler` is the decorator stack of every API ``lambda_handler``: logger, metrics,
  tracer and the correlation id, which is echoed on every response.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import BaseModel

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

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:payrail:problem:"

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


def create_app(*, strip_prefixes: list[str] | None = None) -> APIGatewayHttpResolver:
    """A resolver whose every failure is a problem document and never a stack trace."""
    # A response that does not match its route's declared model is the service's bug: 500, not 400.
    app = APIGatewayHttpResolver(
        enable_validation=True,
        response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR,
        strip_prefixes=strip_prefixes,  # type: ignore[arg-type]
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
        return problem(
            404, "not-found", "Not found", f"No route for {app.current_event.request_context.http.method} {app.current_event.path}."
        )

    @app.exception_handler(Exception)
    def _unexpected(_: Exception) -> Response:
        logger.exception("unhandled error")
        return problem(500, "internal-error", "Internal error", "An unexpected error occurred; quote the correlation id when reporting it.")

    return app


def _request_correlation_id(event: Mapping[str, Any]) -> str:
    headers = event.get("headers") or {}
    from_header = sane_correlation_id(headers.get(CORRELATION_HEADER))
    if from_header:
        return from_header
    request_id = (event.get("requestContext") or {}).get("requestId")
    return sane_correlation_id(request_id) or new_correlation_id()


def api_handler(handler: LambdaHandler) -> LambdaHandler:
    """Logger, metrics and tracer around an API Gateway handler, and the correlation id on every response."""

    @functools.wraps(handler)
    def with_correlation_id(event: dict[str, Any], context: Any) -> dict[str, Any]:
        cid = _request_correlation_id(event)
        set_correlation_id(cid)
        response = handler(event, context)
        response.setdefault("headers", {})[CORRELATION_HEADER] = cid
        return response

    decorated = tracer.capture_lambda_handler(with_correlation_id)
    decorated = metrics.log_metrics(decorated, capture_cold_start_metric=True)
    return logger.inject_lambda_context(decorated, clear_state=True)
