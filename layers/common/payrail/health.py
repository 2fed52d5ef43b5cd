"""Is the product able to serve? The table and every queue must answer.

``GET /health`` is public, so it must not be a way to make the service call AWS on demand, nor
tell a stranger what the dependencies are called or how they fail:

* a :class:`HealthCheck` (one per function instance) runs a round of checks at most once per
  ``interval`` seconds, however many requests arrive, concurrent ones included: they wait for the
  round in progress and share its answer;
* the public report says ``ok`` or ``degraded`` per kind of dependency; which resource failed and
  why goes to the logs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

from payrail.db import table_status
from payrail.errors import DependencyFailure
from payrail.observability import logger
from payrail.queues import queue_depth
from payrail.settings import HealthSettings

Answer = Literal["ok", "failing"]


class HealthReport(BaseModel):
    status: Literal["ok", "degraded"]
    checks: dict[Literal["table", "queues"], Answer] = Field(description="Each kind of dependency: ok or failing (details are logged)")


def check_dependencies(settings: HealthSettings) -> HealthReport:
    """One round of checks: the table's status and every queue's attributes (1 + queues calls)."""
    failures: dict[str, str] = {}
    try:
        status = table_status()
        if status != "ACTIVE":
            failures["table"] = f"table is {status}"
    except DependencyFailure as error:
        failures["table"] = error.detail
    queues_ok = True
    for url in settings.queues:
        try:
            queue_depth(url)
        except DependencyFailure as error:
            queues_ok = False
            failures["queue:" + url.rsplit("/", 1)[-1]] = error.detail
    if failures:
        logger.warning("health check failing", extra={"failures": failures})
    checks: dict[Literal["table", "queues"], Answer] = {
        "table": "failing" if "table" in failures else "ok",
        "queues": "ok" if queues_ok else "failing",
    }
    return HealthReport(status="degraded" if failures else "ok", checks=checks)


class HealthCheck:
    """The last round's report, reused for ``interval`` seconds (failures too: a failing
    dependency under load must not be asked more often)."""

    def __init__(self, run: Callable[[HealthSettings], HealthReport] = check_dependencies, clock: Callable[[], float] = time.monotonic):
        self._run = run
        self._clock = clock
        self._lock = threading.Lock()
        self._report: HealthReport | None = None
        self._checked_at = 0.0

    def report(self, settings: HealthSettings) -> HealthReport:
        with self._lock:  # concurrent requests wait for the round in progress
            now = self._clock()
            if self._report is None or now - self._checked_at >= settings.check_interval_seconds:
                self._report = self._run(settings)
                self._checked_at = self._clock()
            return self._report
