"""The forward-only payout status machine, stated as properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from payrail.db.payouts import transition_condition
from payrail.domain.payout_status import PayoutStatus, can_move, sources_of

statuses = st.sampled_from(list(PayoutStatus))


@given(st.lists(statuses, max_size=20))
def test_any_sequence_of_events_leaves_the_furthest_state_reached(events: list[PayoutStatus]) -> None:
    current = PayoutStatus.PENDING
    for target in events:
        if can_move(current, target):
            current = target
    furthest = max([PayoutStatus.PENDING, *events], key=lambda s: s.rank)
    assert current.rank == furthest.rank
    first_terminal = next((s for s in events if s.terminal), None)
    if first_terminal is not None:
        assert current == first_terminal  # terminal is final: the first terminal event wins


@given(statuses, statuses)
def test_nothing_moves_backwards_or_out_of_a_terminal_state(current: PayoutStatus, target: PayoutStatus) -> None:
    if can_move(current, target):
        assert target.rank > current.rank
        assert not current.terminal


def test_transition_condition_lists_exactly_the_allowed_sources() -> None:
    expression, names, values = transition_condition(PayoutStatus.PROCESSING)
    assert names == {"#status": "status"}
    assert sorted(values.values()) == ["pending", "submitted"]
    assert expression.startswith("attribute_exists(pk) AND #status IN (")
    assert sources_of(PayoutStatus.PENDING) == []
    assert sorted(sources_of(PayoutStatus.PAID)) == ["pending", "processing", "submitted"]
