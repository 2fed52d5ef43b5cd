"""The shared circuit breaker on the template's table: it opens on a failure rate over a sliding
window, so a degraded provider keeps being called and only a failing one is left alone."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from payrail.db import keys, table
from payrail.db.circuit import CircuitBreaker, CircuitOpen

from tests.support import Resources, function_environment_of

WINDOW_MS = 30_000
T0 = 1_800_000_000_000 - 1_800_000_000_000 % WINDOW_MS  # the start of a window


@pytest.fixture
def breaker(resources: Resources) -> Iterator[CircuitBreaker]:
    """A breaker as the payout worker's role uses it (its IAM policy enforced)."""
    with function_environment_of(resources, "PayoutWorkerFunction"):
        yield CircuitBreaker("test-provider", failure_rate_percent=50, minimum_calls=10, window_seconds=30, cooldown_seconds=15)


def call(breaker: CircuitBreaker, now: int, fails: bool) -> None:
    permit = breaker.before_call(now)
    if fails:
        breaker.record_failure(permit, now)
    else:
        breaker.record_success(permit, now)


def test_a_provider_failing_a_quarter_of_concurrent_calls_keeps_being_called(breaker: CircuitBreaker) -> None:
    # Given rounds of 8 workers that take their permits at once, of which 2 fail
    for round_number in range(6):
        now = T0 + round_number * 1000
        permits = [breaker.before_call(now) for _ in range(8)]
        for index, permit in enumerate(permits):
            if index in (3, 7):
                breaker.record_failure(permit, now)
            else:
                breaker.record_success(permit, now)
    # Then it stays closed. Every call is counted once the window holds a failure: the first
    # round's 6 successes, which saw a clean window, were free.
    state = breaker.state(T0 + 6000)
    assert (state.state, state.calls, state.failures) == ("closed", 42, 12)
    breaker.before_call(T0 + 6000)  # no CircuitOpen


def test_a_burst_of_five_failures_among_twenty_calls_does_not_open_it(breaker: CircuitBreaker) -> None:
    # A breaker counting consecutive failures (this one's predecessor opened at 5) would open here.
    for index in range(20):
        call(breaker, T0 + index, fails=index < 5)
    state = breaker.state(T0 + 20)
    assert (state.state, state.failures) == ("closed", 5)


def test_it_opens_once_the_failure_rate_reaches_the_threshold_over_enough_calls(breaker: CircuitBreaker) -> None:
    # Given 9 failed calls: a rate of 100%, but fewer than the 10 calls it counts from
    for second in range(9):
        call(breaker, T0 + second, fails=True)
    assert breaker.state(T0 + 9).state == "closed"
    # When the tenth call fails too
    call(breaker, T0 + 10, fails=True)
    # Then it is open and refuses calls until its cool-down has passed
    assert breaker.state(T0 + 10).state == "open"
    with pytest.raises(CircuitOpen) as refused:
        breaker.before_call(T0 + 1000)
    assert refused.value.retry_after == 15


def test_half_the_calls_failing_opens_it_and_fewer_do_not(breaker: CircuitBreaker) -> None:
    call(breaker, T0, fails=True)
    for index in range(1, 20):
        call(breaker, T0 + index, fails=index % 5 == 0)  # 4 of 20 failed: 20%
    for index in range(7):
        call(breaker, T0 + 100 + index, fails=True)  # 11 of 27: 41%
    assert breaker.state(T0 + 200).state == "closed"
    for index in range(2):
        call(breaker, T0 + 200 + index, fails=True)  # 13 of 29: 45%
    assert breaker.state(T0 + 300).state == "closed"
    for index in range(3):
        call(breaker, T0 + 300 + index, fails=True)  # 16 of 32: 50%
    assert breaker.state(T0 + 400).state == "open"


def test_failures_older_than_the_window_stop_counting(breaker: CircuitBreaker) -> None:
    # Given 9 failures and 1 success in one window
    for second in range(9):
        call(breaker, T0 + second, fails=True)
    call(breaker, T0 + 9, fails=False)
    # When two windows later a few calls fail
    later = T0 + 2 * WINDOW_MS + 1
    for index in range(3):
        call(breaker, later + index, fails=True)
    # Then only the 3 recent calls count: too few to open
    state = breaker.state(later + 3)
    assert state.state == "closed"
    assert (state.calls, state.failures) == (3, 3)


def test_the_previous_window_counts_for_the_share_the_sliding_window_still_covers(breaker: CircuitBreaker) -> None:
    patient = CircuitBreaker("test-provider", failure_rate_percent=50, minimum_calls=1000, window_seconds=30, cooldown_seconds=15)
    for index in range(10):
        call(patient, T0 + index, fails=True)
    # A quarter into the next window three quarters of the previous one still count
    state = breaker.state(T0 + WINDOW_MS + WINDOW_MS // 4)
    assert (state.calls, state.failures) == (7.5, 7.5)


def test_a_successful_probe_closes_it_with_an_empty_window(breaker: CircuitBreaker) -> None:
    for index in range(10):
        call(breaker, T0 + index, fails=True)
    probe = breaker.before_call(T0 + 16_000)
    assert probe.probe
    breaker.record_success(probe, T0 + 16_000)
    state = breaker.state(T0 + 16_001)
    assert (state.state, state.calls, state.failures) == ("closed", 0, 0)
    # So one failure after closing does not open it again
    call(breaker, T0 + 16_002, fails=True)
    assert breaker.state(T0 + 16_003).state == "closed"


def test_a_failed_probe_opens_it_again_and_one_of_many_workers_gets_each_probe(breaker: CircuitBreaker) -> None:
    for index in range(10):
        call(breaker, T0 + index, fails=True)
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def ask() -> None:
        barrier.wait()
        try:
            outcomes.append("probe" if breaker.before_call(T0 + 16_000).probe else "closed")
        except CircuitOpen:
            outcomes.append("refused")

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["probe"] + ["refused"] * 5
    breaker.record_failure(breaker.before_call(T0 + 16_000 + 31_000), T0 + 47_000)  # the probe's claim lapsed: a new probe, failed
    assert breaker.state(T0 + 47_001).state == "open"


def test_the_item_keeps_only_the_buckets_that_still_count(breaker: CircuitBreaker) -> None:
    # Given failures spread over ten windows
    for window in range(10):
        call(breaker, T0 + window * WINDOW_MS, fails=True)
    # Then the item holds the counters of the last two windows only
    item = table().get(keys.circuit("test-provider")) or {}
    counters = sorted(name for name in item if name[0] in "cf" and name[1:].isdigit())
    last = (T0 + 9 * WINDOW_MS) // WINDOW_MS
    assert counters == sorted(f"{kind}{bucket}" for kind in "cf" for bucket in (last - 1, last))
