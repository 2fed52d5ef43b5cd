"""Pure pieces of the bank sync: content hashing, summaries, and refusing non-integer money."""

from __future__ import annotations

import pytest
from payrail.bank.envelope import ProviderTokens
from payrail.bank.sync import RunState, _clean, content_hash

TRANSACTION = {
    "transaction_id": "txn_1",
    "account_id": "acc_1",
    "amount": -12550,
    "currency": "ZAR",
    "date": "2026-11-20",
    "description": "Coffee",
    "pending": False,
}


def test_the_content_hash_ignores_key_order_and_bookkeeping_fields() -> None:
    reordered = dict(reversed(list(TRANSACTION.items())))
    with_bookkeeping = {**TRANSACTION, "updated_at": "2026-11-22T00:00:00Z", "base_generation": 3}
    assert content_hash(reordered) == content_hash(TRANSACTION)
    assert content_hash(with_bookkeeping) == content_hash(TRANSACTION)


@pytest.mark.parametrize(
    "change", [{"amount": -12551}, {"description": "Tea"}, {"pending": True}, {"date": "2026-11-21"}, {"currency": "USD"}]
)
def test_the_content_hash_changes_with_any_content_field(change: dict) -> None:
    assert content_hash({**TRANSACTION, **change}) != content_hash(TRANSACTION)


@pytest.mark.parametrize("amount", [125.5, "125", None, True])
def test_a_transaction_whose_amount_is_not_integer_minor_units_is_refused(amount: object) -> None:
    with pytest.raises(ValueError, match="integer minor units"):
        _clean({**TRANSACTION, "amount": amount})


def test_the_summary_counts_each_transaction_by_its_final_outcome() -> None:
    state = RunState(start_cursor="", outcomes={"a": "inserted", "b": "updated", "c": "unchanged", "d": "removed", "e": "inserted"})
    state.pages = 2
    summary = state.summary("succeeded")
    assert (summary["inserted"], summary["updated"], summary["unchanged"], summary["removed"], summary["pages"]) == (2, 1, 1, 1, 2)


def test_provider_tokens_never_show_in_their_repr() -> None:
    tokens = ProviderTokens("sandbox-access-secret", "sandbox-refresh-secret", 123)
    assert "sandbox-" not in repr(tokens)
    assert "sandbox-" not in str(tokens)
