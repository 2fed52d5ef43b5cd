"""The one way the product waits before trying again: exponential backoff with full jitter.

AWS's recommendation ("Exponential Backoff And Jitter", AWS Architecture Blog): the wait is drawn
uniformly between zero and ``base * 2**attempt`` (capped), so many clients that failed together
do not come back together.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff(attempt: int, base: float, cap: float, draw: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
    return draw() * min(cap, base * 2 ** max(0, attempt))


def backoff_seconds(attempt: int, base: float, cap: float, floor: float | None = None, draw: Callable[[], float] = random.random) -> int:
    """:func:`backoff` in whole seconds, at least one, at least ``floor`` (a server's Retry-After)."""
    delay = max(1, round(backoff(attempt, base, cap, draw)))
    if floor:
        delay = max(delay, int(floor))
    return min(delay, 43_200)
