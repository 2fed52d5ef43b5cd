"""The one clock of the product and the one way it writes a moment down.

Every stored or shown timestamp is RFC 3339 UTC with microseconds and a ``Z``
(``2026-12-04T03:19:07.123456Z``): fixed width, so string order is time order, which the outbox
and the due-sync index rely on when they compare stored timestamps with a cutoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now() -> datetime:
    return datetime.now(UTC)


def text(moment: datetime | None = None) -> str:
    """``moment`` (default: now) as the product writes timestamps."""
    return (moment or now()).astimezone(UTC).strftime(FORMAT)


def from_epoch(seconds: float) -> str:
    return text(datetime.fromtimestamp(seconds, UTC))


def parse(value: str) -> datetime | None:
    """A stored timestamp back as a moment; None when it is not one."""
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        return None


class Deadline:
    """A moment on the monotonic clock after which a piece of work starts nothing new."""

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

    def less(self, seconds: float) -> Deadline:
        """The same deadline ``seconds`` earlier (time kept back for what follows the work)."""
        return Deadline(self.remaining() - seconds, self._clock)
