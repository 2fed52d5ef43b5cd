"""Polling until something is true, bounded in time."""

from __future__ import annotations

import time
from collections.abc import Callable


class TimedOut(AssertionError):
    pass


def wait_for[T](predicate: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimedOut(f"condition not met within {timeout} s")
