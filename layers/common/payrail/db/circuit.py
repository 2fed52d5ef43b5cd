"""A circuit breaker whose state is one item in the table, so every concurrent worker shares it.

closed ──(failure rate over the window)──▶ open ──(cool-down)──▶ half_open ──success──▶ closed
                                             ▲                      │
                                             └──────failure─────────┘

It opens on a failure *rate*, not a count: a degraded provider that fails a quarter of its calls
is still worth calling, and only one that fails most of them (``failure_rate_percent`` of at
least ``minimum_calls`` calls over the last window) is left alone for the cool-down. A count of
failures opened on a merely degraded provider again and again, since under concurrency the
successes between them were not counted at all.

Calls are counted in buckets of ``window_seconds`` (attributes ``c<bucket>`` and ``f<bucket>``,
added to atomically, so racing workers lose no count), and the rate is read over a sliding
window: the current bucket plus the share of the previous one the window still covers. Every
write removes the buckets too old to count, so the item stays a handful of attributes. A call
while the breaker is closed and the window holds no failure writes nothing.

Every state change is a conditional write that names the state it saw (compare and set), so of
many workers seeing the same cool-down end exactly one wins the half-open probe, and a breaker is
opened once however many failures race. Times are integer epoch milliseconds (the table takes no
floats).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from payrail.db import ConditionFailed, Item, keys, table
from payrail.errors import DependencyFailure
from payrail.observability import logger, metrics

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
_BUCKET = re.compile(r"^[cf](\d+)$")


class CircuitOpen(DependencyFailure):
    """The breaker is open: the call was not made."""

    def __init__(self, name: str, retry_after: int) -> None:
        super().__init__(f"The circuit to {name} is open.")
        self.retry_after = max(1, retry_after)


@dataclass(frozen=True)
class BreakerState:
    state: str
    calls: float
    failures: float


@dataclass(frozen=True)
class Permit:
    """What :meth:`CircuitBreaker.before_call` saw; pass it back to the ``record_*`` methods."""

    state: str
    failures: float
    probe: bool = False
    # Bucket attributes the item held that are too old to count: the next write removes them.
    stale: tuple[str, ...] = field(default=())


def _now_ms() -> int:
    return int(time.time() * 1000)


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        failure_rate_percent: int,
        minimum_calls: int,
        window_seconds: float,
        cooldown_seconds: float,
        probe_timeout_seconds: float = 30.0,
    ) -> None:
        self.name = name
        self.key = keys.circuit(name)
        self.rate_percent = failure_rate_percent
        self.minimum_calls = minimum_calls
        self.window_ms = int(window_seconds * 1000)
        self.cooldown_ms = int(cooldown_seconds * 1000)
        self.probe_timeout_ms = int(probe_timeout_seconds * 1000)

    # ------------------------------------------------------------------ the window
    def _bucket(self, now: int) -> int:
        return now // self.window_ms

    def _window(self, item: Item, now: int) -> tuple[float, float]:
        """Calls and failures over the sliding window ending ``now``."""
        bucket = self._bucket(now)
        previous_share = 1 - (now % self.window_ms) / self.window_ms

        def counted(kind: str) -> float:
            return int(item.get(f"{kind}{bucket}", 0)) + previous_share * int(item.get(f"{kind}{bucket - 1}", 0))

        return counted("c"), counted("f")

    def _stale(self, item: Item, now: int) -> tuple[str, ...]:
        oldest_counted = self._bucket(now) - 1
        return tuple(name for name in item if (m := _BUCKET.match(name)) and int(m.group(1)) < oldest_counted)

    def _tripped(self, calls: float, failures: float) -> bool:
        return calls >= self.minimum_calls and failures * 100 >= self.rate_percent * calls

    def _count(self, permit: Permit, now: int, failed: bool) -> Item:
        bucket = self._bucket(now)
        update = f"ADD c{bucket} :one" + (f", f{bucket} :one" if failed else "")
        if permit.stale:
            update += " REMOVE " + ", ".join(permit.stale)
        return table().update(self.key, update, values={":one": 1}, returns="ALL_NEW") or {}

    # ------------------------------------------------------------------ states
    def _changed(self, state: str) -> None:
        metrics.add_metric(name=f"BreakerState_{state}", unit=MetricUnit.Count, value=1)
        logger.info("circuit breaker state changed", extra={"circuit": self.name, "state": state})

    def state(self, now_ms: int | None = None) -> BreakerState:
        item = table().get(self.key) or {}
        calls, failures = self._window(item, now_ms if now_ms is not None else _now_ms())
        return BreakerState(str(item.get("state", CLOSED)), calls, failures)

    def before_call(self, now_ms: int | None = None) -> Permit:
        """A permit to call, or :class:`CircuitOpen`. After the cool-down exactly one caller gets
        the half-open probe; the others stay out until it reports."""
        now = now_ms if now_ms is not None else _now_ms()
        item = table().get(self.key) or {}
        state = str(item.get("state", CLOSED))
        _, failures = self._window(item, now)
        stale = self._stale(item, now)
        if state == CLOSED:
            return Permit(state, failures, stale=stale)
        if state == OPEN:
            opened_at = int(item.get("opened_at", 0))
            if now < opened_at + self.cooldown_ms:
                raise CircuitOpen(self.name, -(-(opened_at + self.cooldown_ms - now) // 1000))
            self._claim_probe("#state = :seen AND opened_at = :opened_at", {":seen": OPEN, ":opened_at": opened_at}, now)
            self._changed(HALF_OPEN)
            return Permit(HALF_OPEN, failures, probe=True, stale=stale)
        probe_until = int(item.get("probe_until", 0))
        if now < probe_until:
            raise CircuitOpen(self.name, -(-(probe_until - now) // 1000))
        # The last probe never reported (its worker died): another caller may probe.
        self._claim_probe("#state = :seen AND probe_until = :probe_until", {":seen": HALF_OPEN, ":probe_until": probe_until}, now)
        return Permit(HALF_OPEN, failures, probe=True, stale=stale)

    def _claim_probe(self, condition: str, values: dict[str, Any], now: int) -> None:
        try:
            table().update(
                self.key,
                "SET #state = :half_open, probe_until = :until",
                condition,
                names={"#state": "state"},
                values={**values, ":half_open": HALF_OPEN, ":until": now + self.probe_timeout_ms},
            )
        except ConditionFailed as lost:
            raise CircuitOpen(self.name, 1) from lost

    def record_success(self, permit: Permit, now_ms: int | None = None) -> None:
        """Count a successful call; a successful probe closes the breaker with an empty window.
        Free (no write) while the breaker is closed and the window holds no failure."""
        now = now_ms if now_ms is not None else _now_ms()
        if permit.state == CLOSED:
            if permit.failures > 0:
                self._count(permit, now, failed=False)
            return
        bucket = self._bucket(now)
        counters = {f"{kind}{b}" for kind in "cf" for b in (bucket, bucket - 1)} | set(permit.stale)
        table().update(
            self.key,
            "SET #state = :closed REMOVE opened_at, probe_until, " + ", ".join(sorted(counters)),
            names={"#state": "state"},
            values={":closed": CLOSED},
        )
        self._changed(CLOSED)

    def record_failure(self, permit: Permit, now_ms: int | None = None) -> None:
        """Count a failed call; open the breaker when the window's failure rate reaches the
        threshold, or again when the probe failed."""
        now = now_ms if now_ms is not None else _now_ms()
        counted = self._count(permit, now, failed=True)
        state = str(counted.get("state", CLOSED))
        if state == CLOSED and self._tripped(*self._window(counted, now)):
            condition, values = "attribute_not_exists(#state) OR #state = :seen", {":seen": CLOSED}
        elif state == HALF_OPEN and permit.probe:
            condition, values = "#state = :seen", {":seen": HALF_OPEN}
        else:
            return
        try:
            table().update(
                self.key,
                "SET #state = :open, opened_at = :now REMOVE probe_until",
                condition,
                names={"#state": "state"},
                values={**values, ":open": OPEN, ":now": now},
            )
        except ConditionFailed:
            return  # another worker opened it first
        self._changed(OPEN)
