"""Payment event records: each event the provider (or reconciliation) reports, applied once.

An event is applied with ONE ``TransactWriteItems``:

1. Put ``EVENT#{id}`` if it does not exist (the deduplication record, written here);
2. the payout's own transition (:func:`payrail.db.payouts.transition_actions`): the forward-only
   conditional update and, for a terminal status, the outbox marker's delete and the release
   (``failed``) or settlement (``paid``) of its reserve, with its ledger entry.

A ``funding.received`` event is applied the same way (:func:`apply_funding`): the event record's
put, the balance's credit and its ledger entry, in one transaction.

If (1) fails the event was seen before: nothing happens. If (2) fails the payout has already
moved past the event (a late or repeated event): the event is recorded as ignored with a
conditional put, and the payout is untouched. Either way there is no read-then-write window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from payrail import clock
from payrail.db import ConditionFailed, Item, TransactionCancelled, balances, keys, table
from payrail.db import payouts as payout_store
from payrail.db.payouts import StoredPayout
from payrail.domain.payout_status import PayoutStatus

EVENT_RECORD_DAYS = 90


class Outcome(StrEnum):
    APPLIED = "applied"
    IGNORED = "ignored"
    DUPLICATE = "duplicate"
    UNKNOWN_PAYOUT = "unknown_payout"


@dataclass(frozen=True)
class StatusChange:
    event_id: str
    event_type: str
    payout_id: str | None
    target: PayoutStatus | None
    provider_reference: str | None = None
    failure_reason: str | None = None
    source: str = "webhook"


@dataclass(frozen=True)
class Funding:
    """Money the provider received for a user (``funding.received``)."""

    event_id: str
    event_type: str
    funding_reference: str
    amount: int
    currency: str
    provider_reference: str | None = None
    source: str = "webhook"


class EventRecord(BaseModel):
    """What the table remembers of an event."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: str
    type: str
    payout_id: str | None = None
    target: str | None = None
    outcome: Outcome
    reason: str | None = None
    source: str
    recorded_at: str


def _event_item(change: StatusChange | Funding, outcome: Outcome, now: datetime, why: str | None = None) -> Item:
    payout_id, target = (change.payout_id, change.target) if isinstance(change, StatusChange) else (None, None)
    return {
        **keys.webhook_event(change.event_id),
        "event_id": change.event_id,
        "type": change.event_type,
        "payout_id": payout_id,
        "target": target.value if target else None,
        "outcome": outcome.value,
        "reason": why,
        "source": change.source,
        "recorded_at": clock.text(now),
        "expires_at": int((now + timedelta(days=EVENT_RECORD_DAYS)).timestamp()),
    }


def _record_only(change: StatusChange | Funding, outcome: Outcome, now: datetime, why: str) -> Outcome:
    try:
        table().put(_event_item(change, outcome, now, why), condition="attribute_not_exists(pk)")
    except ConditionFailed:
        return Outcome.DUPLICATE
    return outcome


def event_record(event_id: str) -> EventRecord | None:
    item = table().get(keys.webhook_event(event_id))
    return EventRecord.model_validate(item) if item else None


def apply_status_change(change: StatusChange) -> tuple[Outcome, StoredPayout | None]:
    """Apply ``change`` exactly once; returns the outcome and the payout as last seen."""
    now = clock.now()
    if change.target is None or change.payout_id is None:
        return _record_only(change, Outcome.IGNORED, now, "unknown event type"), None
    payout = payout_store.get(change.payout_id)
    if payout is None:
        # Not recorded: the worker fails the message so SQS retries it (the payout's creation
        # may not be visible yet), and after maxReceiveCount it is parked in the DLQ.
        return Outcome.UNKNOWN_PAYOUT, None
    db = table()
    moves = payout_store.transition_actions(
        payout,
        change.target,
        clock.text(now),
        event_id=change.event_id,
        provider_reference=change.provider_reference,
        failure_reason=change.failure_reason,
    )
    try:
        db.transact_write([db.put_action(_event_item(change, Outcome.APPLIED, now), condition="attribute_not_exists(pk)"), *moves])
    except TransactionCancelled as cancelled:
        if cancelled.reason(0).code == "ConditionalCheckFailed":
            return Outcome.DUPLICATE, payout
        payout_store.check_transition_cancelled(cancelled, 1)
        # The stored payout comes with the cancellation; read it if the store did not return it.
        returned = cancelled.reason(1).item
        stored = StoredPayout.model_validate(returned) if returned else payout_store.get(change.payout_id)
        if stored is None:
            return Outcome.UNKNOWN_PAYOUT, None
        return _record_only(change, Outcome.IGNORED, now, f"payout is already {stored.status.value}"), stored
    return Outcome.APPLIED, payout.model_copy(update={"status": change.target})


def apply_funding(funding: Funding) -> tuple[Outcome, str | None]:
    """Credit ``funding`` exactly once: the event record and the credit with its ledger entry are
    one transaction, so a redelivered event fails on its record and credits nothing. Returns the
    outcome and the user credited (None for a reference no user has, recorded as ignored)."""
    now = clock.now()
    user_id = balances.user_of_funding_reference(funding.funding_reference)
    if user_id is None:
        return _record_only(funding, Outcome.IGNORED, now, "unknown funding reference"), None
    db = table()
    credit = balances.credit_actions(user_id, funding.currency, funding.amount, funding.event_id, clock.text(now))
    try:
        db.transact_write([db.put_action(_event_item(funding, Outcome.APPLIED, now), condition="attribute_not_exists(pk)"), *credit])
    except TransactionCancelled as cancelled:
        # The event record says it was seen; so does its ledger entry once the record has expired
        # (EVENT_RECORD_DAYS) and the provider delivers the event again: credited once either way.
        if "ConditionalCheckFailed" in (cancelled.reason(0).code, cancelled.reason(2).code):
            return Outcome.DUPLICATE, user_id
        raise
    return Outcome.APPLIED, user_id
