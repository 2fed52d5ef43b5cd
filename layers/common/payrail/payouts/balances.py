"""The balances API's use cases and wire shapes: the caller's balances and their ledger.

Amounts are integer ISO 4217 minor units with their decimal strings in major units beside them,
as for payouts. A user only ever reads their own partition: the user id comes from the token and
is part of every key queried, and a cursor is pinned to that partition (``decode_cursor``).
"""

from __future__ import annotations

from pydantic import BaseModel, Field, computed_field

from payrail.db import balances as store
from payrail.db.balances import EntryType
from payrail.domain import money


class BalanceView(BaseModel):
    currency: str
    available: int = Field(description="Integer ISO 4217 minor units that new payouts may use")
    reserved: int = Field(description="Integer ISO 4217 minor units held by payouts not yet paid or failed")
    updated_at: str

    @computed_field(description="available in major units, as a decimal string")  # type: ignore[prop-decorator]
    @property
    def available_decimal(self) -> str:
        return money.to_decimal_string(self.available, self.currency)

    @computed_field(description="reserved in major units, as a decimal string")  # type: ignore[prop-decorator]
    @property
    def reserved_decimal(self) -> str:
        return money.to_decimal_string(self.reserved, self.currency)


class Balances(BaseModel):
    funding_reference: str = Field(description="Send money with this reference; the payment provider credits it here")
    items: list[BalanceView]


class LedgerEntryView(BaseModel):
    id: str
    type: EntryType = Field(
        description="funding adds to available; reserve moves available to reserved; release moves it back; settle takes it out of reserved"
    )
    amount: int = Field(description="Integer ISO 4217 minor units, always positive; the type says which way it moved")
    currency: str
    payout_id: str | None
    event_id: str | None
    created_at: str

    @computed_field(description="amount in major units, as a decimal string")  # type: ignore[prop-decorator]
    @property
    def amount_decimal(self) -> str:
        return money.to_decimal_string(self.amount, self.currency)


class LedgerPage(BaseModel):
    items: list[LedgerEntryView]
    next_cursor: str | None = None


def get_balances(user_id: str) -> Balances:
    balances = store.balances_of(user_id)
    # A balance exists only once a funding event was credited, and crediting needs the recorded
    # reference; so only a user with no balance yet needs it recorded (the console polls this).
    reference = store.funding_reference(user_id) if balances else store.register_funding_reference(user_id)
    items = [
        BalanceView(currency=b.currency, available=b.available, reserved=b.reserved, updated_at=b.updated_at)
        for b in sorted(balances, key=lambda b: b.currency)
    ]
    return Balances(funding_reference=reference, items=items)


def get_ledger(user_id: str, currency: str, limit: int, cursor: str | None) -> LedgerPage:
    entries, next_cursor = store.ledger_page(user_id, currency, limit, cursor)
    return LedgerPage(items=[LedgerEntryView.model_validate(entry.model_dump()) for entry in entries], next_cursor=next_cursor)
