"""The periodic jobs the EventBridge schedule runs, one after the other.

Each job is a use case that takes the scheduled event's time and returns a small summary for
the log; a job that raises does not stop the others, and the invocation fails afterwards so
the failure is visible (Lambda retries the asynchronous invocation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from payrail.observability import logger

Job = Callable[[datetime], dict[str, Any]]


class JobsFailed(RuntimeError):
    pass


def run_jobs(jobs: Sequence[Job], now: datetime) -> dict[str, Any]:
    results: dict[str, Any] = {}
    failed: list[str] = []
    for job in jobs:
        name = job.__name__
        try:
            results[name] = job(now)
            logger.info("scheduled job finished", extra={"job": name, "result": results[name]})
        except Exception:
            logger.exception("scheduled job failed", extra={"job": name})
            failed.append(name)
    if failed:
        raise JobsFailed(f"jobs failed: {', '.join(failed)}")
    return results
