"""The one backoff: exponential, with full jitter, bounded, with a server's Retry-After as a floor."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from payrail.retry import backoff, backoff_seconds


@given(
    attempt=st.integers(min_value=0, max_value=60), base=st.floats(min_value=0.01, max_value=5), cap=st.floats(min_value=0.1, max_value=600)
)
def test_backoff_is_full_jitter_bounded_by_the_cap_and_the_exponential(attempt: int, base: float, cap: float) -> None:
    assert 0 <= backoff(attempt, base, cap) <= min(cap, base * 2**attempt)


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    assert backoff(3, 1.0, 100, draw=lambda: 0.0) == 0.0
    assert backoff(3, 1.0, 100, draw=lambda: 1.0) == 8.0


@given(st.integers(min_value=0, max_value=50), st.floats(min_value=0, max_value=1, exclude_max=True))
def test_whole_seconds_are_at_least_one_and_never_above_the_cap(attempt: int, draw: float) -> None:
    assert 1 <= backoff_seconds(attempt, base=2, cap=300, draw=lambda: draw) <= 300


def test_the_ceiling_doubles_per_attempt_and_retry_after_is_a_floor() -> None:
    assert [backoff_seconds(n, base=2, cap=300, draw=lambda: 0.999) for n in (0, 1, 2, 3, 8)] == [2, 4, 8, 16, 300]
    assert backoff_seconds(0, base=2, cap=300, floor=30, draw=lambda: 0.5) == 30
    assert backoff_seconds(7, base=2, cap=300, floor=1, draw=lambda: 0.5) == 128
