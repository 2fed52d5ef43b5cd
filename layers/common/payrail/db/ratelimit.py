"""Fixed-window rate limits kept in the table: one counter item per subject and window,
incremented with a condition, so concurrent requests cannot overshoot the limit."""

from __future__ import annotations

import time

from payrail.db import ConditionFailed, Write, table
from payrail.db.keys import rate_window
from payrail.errors import RateLimited


def window_of(window_seconds: int, now: float | None = None) -> tuple[int, int]:
    """(window number, seconds until it ends)."""
    now = now if now is not None else time.time()
    window = int(now // window_seconds)
    return window, max(1, int((window + 1) * window_seconds - now + 0.999))


def increment_action(scope: str, subject: str, limit: int, window_seconds: int, now: float | None = None) -> Write:
    """The counter increment as a transaction action (its condition fails at the limit)."""
    window, _ = window_of(window_seconds, now)
    return table().update_action(
        rate_window(scope, subject, window),
        "ADD #count :one SET expires_at = if_not_exists(expires_at, :expires)",
        condition="attribute_not_exists(#count) OR #count < :limit",
        names={"#count": "count"},
        values={":one": 1, ":limit": limit, ":expires": (window + 2) * window_seconds},
    )


def consume(scope: str, subject: str, limit: int, window_seconds: int = 60, now: float | None = None) -> None:
    """Count one request; RateLimited (429, with Retry-After) once ``limit`` is reached."""
    try:
        table().run(increment_action(scope, subject, limit, window_seconds, now))
    except ConditionFailed as error:
        raise RateLimited("Too many requests; try again later.", retry_after=window_of(window_seconds, now)[1]) from error
