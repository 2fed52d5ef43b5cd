"""A circuit breaker whose state is one item in the table, so every concurrent worker shares it.

closed ──(threshold consecutive failures)──▶ open ──(cool-down)──▶ half_open ──success──▶ closed
                                               ▲                      │
                                               └──────failure─────────┘

Every state change is a conditional write that names the state it saw (compare and set), so of
many workers seeing the same cool-down end exactly one wins the half-open probe, and a breaker is
opened once however many failures race. Times are integer epoch milliseconds (the table takes no
floats).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from payrail.db import ConditionFailed, keys, table
from payrail.errors import DependencyFailure
from payrail.observability import logger, metrics

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitOpen(DependencyFailure):
    """The breaker is open: the call was not made."""

    def __init__(self, name: str, retry_after: int) -> None:
        super().__init__(f"The circuit to {name} is open.")
        self.retry_after = max(1, retry_after)


@dataclass(frozen=True)
class BreakerState:
    state: str
    failures: int


@dataclass(frozen=True)
class Permit:
    """What :meth:`CircuitBreaker.before_call` saw; pass it back to the ``record_*`` methods."""

    state: str
    failures: int
    probe: bool = False


def _now_ms() -> int:
    return int(time.time() * 1000)


class CircuitBreaker:
    def __init__(self, name: str, failure_threshold: int, cooldown_seconds: float, probe_timeout_seconds: float = 30.0) -> None:
        self.name = name
        self.key = keys.circuit(name)
        self.threshold = failure_threshold
        self.cooldown_ms = int(cooldown_seconds * 1000)
        self.probe_timeout_ms = int(probe_timeout_seconds * 1000)

    def _changed(self, state: str) -> None:
        metrics.add_metric(name=f"BreakerState_{state}", unit=MetricUnit.Count, value=1)
        logger.info("circuit breaker state changed", extra={"circuit": self.name, "state": state})

    def state(self) -> BreakerState:
        item = table().get(self.key) or {}
        return BreakerState(str(item.get("state", CLOSED)), int(item.get("failures", 0)))

    def before_call(self, now_ms: int | None = None) -> Permit:
        """A permit to call, or :class:`CircuitOpen`. After the cool-down exactly one caller gets
        the half-open probe; the others stay out until it reports."""
        now = now_ms if now_ms is not None else _now_ms()
        item = table().get(self.key) or {}
        state, failures = str(item.get("state", CLOSED)), int(item.get("failures", 0))
        if state == CLOSED:
            return Permit(state, failures)
        if state == OPEN:
            opened_at = int(item.get("opened_at", 0))
            if now < opened_at + self.cooldown_ms:
                raise CircuitOpen(self.name, -(-(opened_at + self.cooldown_ms - now) // 1000))
            self._claim_probe("#state = :seen AND opened_at = :opened_at", {":seen": OPEN, ":opened_at": opened_at}, now)
            self._changed(HALF_OPEN)
            return Permit(HALF_OPEN, failures, probe=True)
        probe_until = int(item.get("probe_until", 0))
        if now < probe_until:
            raise CircuitOpen(self.name, -(-(probe_until - now) // 1000))
        # The last probe never reported (its worker died): another caller may probe.
        self._claim_probe("#state = :seen AND probe_until = :probe_until", {":seen": HALF_OPEN, ":probe_until": probe_until}, now)
        return Permit(HALF_OPEN, failures, probe=True)

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

    def record_success(self, permit: Permit) -> None:
        """Close the breaker and reset the count; free (no write) when it was closed and clean."""
        if permit.state == CLOSED and permit.failures == 0:
            return
        table().update(
            self.key,
            "SET #state = :closed, failures = :zero REMOVE opened_at, probe_until",
            names={"#state": "state"},
            values={":closed": CLOSED, ":zero": 0},
        )
        if permit.state != CLOSED:
            self._changed(CLOSED)

    def record_failure(self, permit: Permit, now_ms: int | None = None) -> None:
        """Count a failure; open the breaker at the threshold, or again when the probe failed."""
        now = now_ms if now_ms is not None else _now_ms()
        counted = table().update(self.key, "ADD failures :one", values={":one": 1}, returns="ALL_NEW") or {}
        state, failures = str(counted.get("state", CLOSED)), int(counted.get("failures", 0))
        if state == CLOSED and failures >= self.threshold:
            condition = "(attribute_not_exists(#state) OR #state = :seen) AND failures >= :threshold"
            values: dict[str, Any] = {":seen": CLOSED, ":threshold": self.threshold}
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
