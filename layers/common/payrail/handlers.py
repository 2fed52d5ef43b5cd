"""Decorator stacks for handlers that are not behind the HTTP API (SQS and schedules)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from payrail.observability import (
    CORRELATION_ATTRIBUTE,
    logger,
    metrics,
    new_correlation_id,
    sane_correlation_id,
    set_correlation_id,
    tracer,
)

Handler = Callable[[dict[str, Any], Any], Any]


def scheduled_handler(handler: Handler) -> Handler:
    """Logger, metrics and tracer around an EventBridge-scheduled handler; the event id is the correlation id."""

    @functools.wraps(handler)
    def with_correlation_id(event: dict[str, Any], context: Any) -> Any:
        set_correlation_id(sane_correlation_id(event.get("id")) or new_correlation_id())
        return handler(event, context)

    decorated = tracer.capture_lambda_handler(with_correlation_id)
    decorated = metrics.log_metrics(decorated, capture_cold_start_metric=True)
    return logger.inject_lambda_context(decorated, clear_state=True)


def sqs_handler(handler: Handler) -> Handler:
    """Logger, metrics and tracer around an SQS consumer (correlation ids are set per record,
    with :func:`adopt_correlation_id`)."""
    decorated = tracer.capture_lambda_handler(handler)
    decorated = metrics.log_metrics(decorated, capture_cold_start_metric=True)
    return logger.inject_lambda_context(decorated, clear_state=True)


def adopt_correlation_id(message_attributes: Any) -> str:
    """Continue the correlation id a message carries in its ``correlation_id`` attribute (from a
    parsed ``SqsRecordModel`` or a raw record's dict), or start a new one."""
    attribute = (message_attributes or {}).get(CORRELATION_ATTRIBUTE)
    if isinstance(attribute, dict):
        value = attribute.get("stringValue")
    else:
        value = getattr(attribute, "stringValue", None) or getattr(attribute, "string_value", None)
    correlation = sane_correlation_id(value) or new_correlation_id()
    set_correlation_id(correlation)
    return correlation
