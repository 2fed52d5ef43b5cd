"""The periodic jobs the EventBridge schedule runs, one after the other, within the invocation's time.

Each job is a use case that takes the scheduled event's time and a :class:`Deadline`, and returns
a small summary for the log. A job stops starting new work once its deadline has passed and
leaves the rest to the next run, so a backlog never runs the function out of time with its
finished work unreported. A job that raises does not stop the others, and the invocation fails
afterwards so the failure is visible (Lambda retries the asynchronous invocation).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from payrail.clock import Deadline
from payrail.observability import logger, metrics, new_correlation_id, sane_correlation_id, set_correlation_id, tracer

# Kept back from the invocation's time for what runs past a job's deadline (a step already started
# finishes: one AWS call may take its 5 s read timeout) and for the handler's log and metric flush.
RESERVE_SECONDS = 10.0


Job = Callable[[datetime, Deadline], dict[str, Any]]


class JobsFailed(RuntimeError):
    pass


def run_jobs(jobs: Sequence[Job], now: datetime, seconds_left: float, clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Run ``jobs`` in turn in the ``seconds_left`` of the invocation (less :data:`RESERVE_SECONDS`).

    Each job gets an equal share of the time still left when it starts, so time an early job does
    not use passes to the later ones and no job can take the others' time."""
    overall = Deadline(seconds_left - RESERVE_SECONDS, clock)
    results: dict[str, Any] = {}
    failed: list[str] = []
    for position, job in enumerate(jobs):
        name = job.__name__
        try:
            results[name] = job(now, overall.share(len(jobs) - position))
            logger.info("scheduled job finished", extra={"job": name, "result": results[name]})
        except Exception:
            logger.exception("scheduled job failed", extra={"job": name})
            failed.append(name)
    if failed:
        raise JobsFailed(f"jobs failed: {', '.join(failed)}")
    return results


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
