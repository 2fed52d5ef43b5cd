"""Decorator stacks for handlers that are not behind the HTTP API (SQS and schedules)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from payrail.observability import logger, metrics, new_correlation_id, sane_correlation_id, set_correlation_id, tracer

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
