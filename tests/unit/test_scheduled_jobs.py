"""How the scheduled jobs share the invocation's time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from payrail.clock import Deadline
from payrail.scheduled import RESERVE_SECONDS, JobsFailed, run_jobs

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_job_gets_an_equal_share_of_what_is_left_and_passes_on_what_it_does_not_use() -> None:
    clock = Clock()
    given: dict[str, float] = {}

    def quick(now: datetime, deadline: Deadline) -> dict[str, Any]:
        given["quick"] = deadline.remaining()
        clock.now += 3
        return {}

    def greedy(now: datetime, deadline: Deadline) -> dict[str, Any]:
        given["greedy"] = deadline.remaining()
        clock.now += deadline.remaining() + 2  # overruns its share by one slow call
        return {"late": deadline.passed}

    def last(now: datetime, deadline: Deadline) -> dict[str, Any]:
        given["last"] = deadline.remaining()
        return {}

    results = run_jobs([quick, greedy, last], NOW, 65, clock)

    budget = 65 - RESERVE_SECONDS
    assert given["quick"] == pytest.approx(budget / 3)
    assert given["greedy"] == pytest.approx((budget - 3) / 2)
    assert given["last"] == pytest.approx(budget - 3 - (budget - 3) / 2 - 2)
    assert results == {"quick": {}, "greedy": {"late": True}, "last": {}}


def test_no_time_beyond_the_reserve_gives_every_job_a_passed_deadline() -> None:
    seen: list[bool] = []

    def job(now: datetime, deadline: Deadline) -> dict[str, Any]:
        seen.append(deadline.passed)
        return {"remaining": deadline.remaining()}

    assert run_jobs([job], NOW, RESERVE_SECONDS - 1, Clock()) == {"job": {"remaining": 0.0}}
    assert seen == [True]


def test_a_failing_job_does_not_stop_the_next_and_the_invocation_fails_after_both() -> None:
    ran: list[str] = []

    def broken(now: datetime, deadline: Deadline) -> dict[str, Any]:
        ran.append("broken")
        raise RuntimeError("provider down")

    def healthy(now: datetime, deadline: Deadline) -> dict[str, Any]:
        ran.append("healthy")
        return {}

    with pytest.raises(JobsFailed, match="broken"):
        run_jobs([broken, healthy], NOW, 60, Clock())
    assert ran == ["broken", "healthy"]
