"""Fault injection for reliability runs of the local stack (never part of the product).

* duplicate deliveries: after a record was processed and deleted, a copy of the message (same
  body and attributes) is sent again with probability ``duplicate_rate``: SQS's at-least-once
  delivery, made frequent;
* crashes: with probability ``kill_rate`` an SQS-triggered invocation has its function process
  killed after a random delay of up to ``kill_window`` seconds, so it may die anywhere, for
  instance between a provider call and the status update; its batch is not deleted and comes
  back after the visibility timeout, as after a crash on Lambda.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field


@dataclass
class Chaos:
    duplicate_rate: float = 0.0
    kill_rate: float = 0.0
    kill_window: float = 0.5
    seed: int | None = None
    duplicates_injected: int = 0
    kills_injected: int = 0
    _random: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.seed is not None:
            self._random.seed(self.seed)

    @property
    def active(self) -> bool:
        return self.duplicate_rate > 0 or self.kill_rate > 0

    def duplicate(self) -> bool:
        with self._lock:
            hit = self._random.random() < self.duplicate_rate
            self.duplicates_injected += hit
            return hit

    def kill_after(self) -> float | None:
        """Seconds after which to kill this invocation's process, or None to let it live."""
        with self._lock:
            if self._random.random() >= self.kill_rate:
                return None
            self.kills_injected += 1
            return self._random.uniform(0.0, self.kill_window)

    def counters(self) -> dict[str, float]:
        return {
            "duplicate_rate": self.duplicate_rate,
            "kill_rate": self.kill_rate,
            "duplicates_injected": self.duplicates_injected,
            "kills_injected": self.kills_injected,
        }
