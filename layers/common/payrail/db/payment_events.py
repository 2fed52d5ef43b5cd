"""Webhook event records and the payout status changes they cause, written together.

An event is applied with ONE ``TransactWriteItems``:

1. Put ``EVENT#{id}`` if it does not exist (the deduplication record);
2. Update the payout to the event's status under the status machine's transition condition,
   bumping ``version``;
3. when that status is terminal, Delete the payout's unfinished-payout marker.

If (1) fails the event was seen before: nothing happens. If (2) fails the payout has already
moved past the event (a late or repeated event): the event is recorded as ignored with a
conditional put, and the payout is untouched. Either way there is no read-then-write window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from payrail.db import ConditionFailed, Item, TransactionCancelled, keys, table
from payrail.payouts.status import PayoutStatus, transition_condition

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


def _now() -> datetime:
    return datetime.now(UTC)


def timestamp_text(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds, as the payouts feature writes ``created_at`` and
    ``updated_at``: string order is time order, which the outbox query relies on."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _event_record(change: StatusChange, outcome: Outcome, now: datetime, why: str | None = None) -> Item:
    return {
        **keys.webhook_event(change.event_id),
        "event_id": change.event_id,
        "type": change.event_type,
        "payout_id": change.payout_id,
        "target": change.target.value if change.target else None,
        "outcome": outcome.value,
        "reason": why,
        "source": change.source,
        "recorded_at": timestamp_text(now),
        "expires_at": int((now + timedelta(days=EVENT_RECORD_DAYS)).timestamp()),
    }


def _record_only(change: StatusChange, outcome: Outcome, now: datetime, why: str) -> Outcome:
    try:
        table().put(_event_record(change, outcome, now, why), condition="attribute_not_exists(pk)")
    except ConditionFailed:
        return Outcome.DUPLICATE
    return outcome


def get_payout(payout_id: str) -> Item | None:
    return table().get(keys.payout(payout_id))


def event_record(event_id: str) -> Item | None:
    return table().get(keys.webhook_event(event_id))


def apply_status_change(change: StatusChange) -> tuple[Outcome, Item | None]:
    """Apply ``change`` exactly once; returns the outcome and the payout as last seen."""
    now = _now()
    if change.target is None or change.payout_id is None:
        return _record_only(change, Outcome.IGNORED, now, "unknown event type"), None
    payout = get_payout(change.payout_id)
    if payout is None:
        # Not recorded: the worker fails the message so SQS retries it (the payout's creation
        # may not be visible yet), and after maxReceiveCount it is parked in the DLQ.
        return Outcome.UNKNOWN_PAYOUT, None
    db = table()
    condition, names, values = transition_condition(change.target)
    update = "SET #status = :target, updated_at = :now, version = if_not_exists(version, :zero) + :one, last_event_id = :event"
    values = {**values, ":target": change.target.value, ":now": timestamp_text(now), ":zero": 0, ":one": 1, ":event": change.event_id}
    if change.provider_reference:
        update += ", provider_reference = if_not_exists(provider_reference, :reference)"
        values[":reference"] = change.provider_reference
    if change.target is PayoutStatus.FAILED:
        update += ", failure_reason = :reason"
        values[":reason"] = change.failure_reason or "unspecified"
    actions = [
        db.put_action(_event_record(change, Outcome.APPLIED, now), condition="attribute_not_exists(pk)"),
        db.update_action(keys.payout(change.payout_id), update, condition, names, values, return_on_failure=True),
    ]
    if change.target.terminal:
        actions.append(db.delete_action(keys.outbox(change.payout_id, str(payout["created_at"]))))
    try:
        db.transact_write(actions)
    except TransactionCancelled as cancelled:
        if cancelled.reason(0).code == "ConditionalCheckFailed":
            return Outcome.DUPLICATE, payout
        # The stored payout comes with the cancellation; read it if the store did not return it.
        stored: Any = cancelled.reason(1).item or get_payout(change.payout_id)
        if stored is None:
            return Outcome.UNKNOWN_PAYOUT, None
        why = f"payout is already {stored.get('status')}"
        return _record_only(change, Outcome.IGNORED, now, why), stored
    return Outcome.APPLIED, {**payout, "status": change.target.value}


def outbox_markers(shard: str, older_than: str, limit: int = 100) -> list[Item]:
    """Unfinished-payout markers of ``shard`` created before ``older_than`` (:func:`timestamp_text`), oldest first."""
    found: list[Item] = []
    start = None
    while True:
        page = table().query("pk = :pk AND sk < :cutoff", {":pk": shard, ":cutoff": older_than}, limit=limit, start_key=start)
        found.extend(page.items)
        if not page.last_key:
            return found
        start = page.last_key


def payouts(payout_ids: list[str]) -> dict[str, Item]:
    return {str(item["id"]): item for item in table().batch_get(keys.payout(pid) for pid in payout_ids)}


def claim_requeue(marker: Item, now: str, last_before: str) -> bool:
    """Note on ``marker`` that its payout is re-enqueued at ``now``, if the marker is still as it
    was read (same re-enqueue count: no concurrent run got there first), it was last re-enqueued
    before ``last_before`` and it still exists (the payout is not final): True if this caller is
    to send the message."""
    seen = int(marker.get("requeue_count", 0))
    try:
        table().update(
            {"pk": str(marker["pk"]), "sk": str(marker["sk"])},
            "SET requeued_at = :now, requeue_count = :next",
            condition=(
                "attribute_exists(pk) AND (attribute_not_exists(requeue_count) OR requeue_count = :seen)"
                " AND (attribute_not_exists(requeued_at) OR requeued_at < :last)"
            ),
            values={":now": now, ":next": seen + 1, ":seen": seen, ":last": last_before},
            returns="NONE",
        )
    except ConditionFailed:
        return False
    return True


def delete_marker(marker: Item) -> None:
    table().delete({"pk": str(marker["pk"]), "sk": str(marker["sk"])})
