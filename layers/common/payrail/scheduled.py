"""The periodic jobs the EventBridge schedule runs, one after the other, within the invocation's time.

Each job is a use case that takes the scheduled event's time and a :class:`Deadline`, and returns
a small summary for the log. A job stops starting new work once its deadline has passed and
leaves the rest to the next run, so a backlog never runs the function out of time with its
finished work unreported. A job that raises does not stop the others, and the invocation fails
afterwards so the failure is visible (Lambda retries the asynchronous invocation).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from payrail.observability import logger

# Kept back from the invocation's time for what runs past a job's deadline (a step already started
# finishes: one AWS call may take its 5 s read timeout) and for the handler's log and metric flush.
RESERVE_SECONDS = 10.0


class Deadline:
    """A moment on the monotonic clock after which a job starts no new work."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._at = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._at - self._clock())

    @property
    def passed(self) -> bool:
        return self._clock() >= self._at

    def share(self, parts: int) -> Deadline:
        """An equal part of the time left, for the first of ``parts`` jobs that run in turn."""
        return Deadline(self.remaining() / max(parts, 1), self._clock)


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
