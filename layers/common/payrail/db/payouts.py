"""The payout's one owner in data access: its items, its status changes and its whole outbox.

Items written here and nowhere else: the idempotency record, the payout, its unfinished-payout
(outbox) marker and the payout rate-limit window. The balance and its ledger entry join the same
transactions through :mod:`payrail.db.balances`.

* **Create** is one ``TransactWriteItems`` of six actions (:func:`create`): those four items, the
  balance's reserve (``available >= amount``) and its ledger entry. When its cancellation reasons
  say the idempotency record already exists, ``ReturnValuesOnConditionCheckFailure`` has handed
  the stored record back in the same call, so a replay costs one call and there is no
  "in progress" window in which a concurrent duplicate could create a second payout; when the
  balance's condition failed, the stored balance came back the same way, so "insufficient funds"
  names what is available, also in one call, and nothing was written.
* **Status changes** are conditional updates that hold only when the status machine
  (:mod:`payrail.domain.payout_status`) allows the move; a terminal one deletes the outbox marker
  and releases (``failed``) or settles (``paid``) the payout's reserve in the same transaction
  (:func:`transition_actions`, which the payment-event recorder joins), so however often the
  event comes, the money moves once.
* **The outbox**: a marker per unfinished payout, sharded, which the scheduled reconciliation
  reads (:func:`old_markers`), claims for a re-enqueue (:func:`claim_requeue`) and removes when
  the payout is final (:func:`delete_marker`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from payrail.db import ConditionFailed, Item, TransactionCancelled, Write, balances, decode_cursor, encode_cursor, keys, table
from payrail.domain.payout_status import PayoutStatus, sources_of

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
RATE_WINDOW_SECONDS = 60
PAYOUTS_INDEX = "gsi1"

# The order of the create transaction's actions; cancellation reasons line up with it.
_IDEMPOTENCY, _PAYOUT, _OUTBOX, _RATE, _BALANCE, _LEDGER = range(6)
# How often a create whose transaction conflicted with another writer of the same balance (a
# hot key: one user's concurrent creates) is tried in all, with jittered backoff in between.
CREATE_CONFLICT_ATTEMPTS = 8


class StoredPayout(BaseModel):
    """A payout as the table holds it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    user_id: str
    status: PayoutStatus
    amount: int
    currency: str
    beneficiary: dict[str, str]
    reference: str
    created_at: str
    updated_at: str
    version: int = 1
    failure_reason: str | None = None
    provider_reference: str | None = None
    last_event_id: str | None = None
    # When a payout worker last received a message naming it (``receive``): reconciliation's
    # sign that the payout's message is still in flight.
    received_at: str | None = None
    # Its amount was reserved from the balance when it was created (every payout since balances
    # exist), so its end releases or settles it.
    funds_reserved: bool = False
    # The ticket of the one payouts message that may be postponed next (``take_ticket``); absent
    # until the payout is first postponed, which is the ticket its first message carries.
    ticket: str | None = None


@dataclass(frozen=True)
class OutboxMarker:
    """The marker of a payout that is not final yet, as reconciliation reads it."""

    payout_id: str
    created_at: str
    requeue_count: int = 0
    requeued_at: str | None = None
    # The API could not send the payout's message (``note_hand_off_failed``).
    hand_off_failed: bool = False

    @property
    def key(self) -> dict[str, str]:
        return keys.outbox(self.payout_id, self.created_at)


def _payout(item: Item) -> StoredPayout:
    return StoredPayout.model_validate(item)


def _marker(item: Item) -> OutboxMarker:
    created_at, _, payout_id = str(item["sk"]).rpartition("#")  # the sort key keys.outbox built
    return OutboxMarker(
        payout_id=payout_id,
        created_at=created_at,
        requeue_count=int(item.get("requeue_count", 0)),
        requeued_at=item.get("requeued_at"),
        hand_off_failed=bool(item.get("hand_off_failed", False)),
    )


def transition_condition(target: PayoutStatus) -> tuple[str, dict[str, str], dict[str, Any]]:
    """A condition expression (with its names and values) that holds only when the stored
    payout may move to ``target``: the status machine's rule, enforced by DynamoDB."""
    sources = sources_of(target)
    placeholders = [f":from_{status.value}" for status in sources]
    expression = f"attribute_exists(pk) AND #status IN ({', '.join(placeholders)})"
    return expression, {"#status": "status"}, {p: s.value for p, s in zip(placeholders, sources, strict=True)}


# -------------------------------------------------------------------- create
@dataclass(frozen=True)
class Created:
    status_code: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Replayed:
    """The key was used before; ``fingerprint`` is the one stored with it."""

    fingerprint: str
    status_code: int
    body: dict[str, Any]


@dataclass(frozen=True)
class RateLimitHit:
    retry_after: int


@dataclass(frozen=True)
class InsufficientFunds:
    available: int


def create(
    *,
    user_id: str,
    key: str,
    fingerprint: str,
    payout: dict[str, Any],
    now: float,
    rate_limit: int,
) -> Created | Replayed | RateLimitHit | InsufficientFunds:
    """Write the idempotency record, the payout, its outbox marker, the rate-limit count, the
    balance's reserve and its ledger entry in ONE transaction, or write nothing and say why.
    ``payout`` is the public view to answer with."""
    db = table()
    body = dict(payout)
    window = int(now // RATE_WINDOW_SECONDS)
    window_end = (window + 1) * RATE_WINDOW_SECONDS
    record = {
        **keys.idempotency(user_id, key),
        "user_id": user_id,
        "fingerprint": fingerprint,
        "status_code": 201,
        # The response is stored as its JSON text so a replay returns byte-for-byte the same body.
        "response_body": json.dumps(body, separators=(",", ":")),
        "payout_id": payout["id"],
        "created_at": payout["created_at"],
        "expires_at": int(now) + IDEMPOTENCY_TTL_SECONDS,
    }
    item = {
        **keys.payout(payout["id"]),
        "gsi1pk": keys.user_payouts_index(user_id),
        "gsi1sk": f"{payout['created_at']}#{payout['id']}",
        "user_id": user_id,
        "version": 1,
        "funds_reserved": True,
        **payout,
    }
    marker = {**keys.outbox(payout["id"], payout["created_at"]), "payout_id": payout["id"], "user_id": user_id}
    actions = [
        # TTL deletion lags by up to days, so an expired record is also recognised here, in the condition.
        db.put_action(record, "attribute_not_exists(pk) OR expires_at < :now", values={":now": int(now)}, return_on_failure=True),
        db.put_action(item, "attribute_not_exists(pk)"),
        db.put_action(marker, "attribute_not_exists(pk)"),
        db.update_action(
            keys.rate_window("payouts", user_id, window),
            "SET #count = if_not_exists(#count, :zero) + :one, expires_at = :expires",
            "attribute_not_exists(pk) OR #count < :limit",
            names={"#count": "count"},
            values={":zero": 0, ":one": 1, ":limit": rate_limit, ":expires": window_end + RATE_WINDOW_SECONDS},
        ),
        *balances.reserve_actions(user_id, payout["currency"], payout["amount"], payout["id"], payout["created_at"]),
    ]
    try:
        db.transact_write(actions, conflict_attempts=CREATE_CONFLICT_ATTEMPTS)
    except TransactionCancelled as cancelled:
        stored = cancelled.reason(_IDEMPOTENCY)
        if stored.code == "ConditionalCheckFailed" and stored.item:
            return Replayed(
                fingerprint=str(stored.item["fingerprint"]),
                status_code=int(stored.item["status_code"]),
                body=json.loads(stored.item["response_body"]),
            )
        if cancelled.reason(_RATE).code == "ConditionalCheckFailed":
            return RateLimitHit(retry_after=max(1, int(window_end - now + 0.999)))
        balance = cancelled.reason(_BALANCE)
        if balance.code == "ConditionalCheckFailed":
            return InsufficientFunds(available=balances.available_of(balance.item))
        raise
    return Created(201, body)


# -------------------------------------------------------------------- reads
def get(payout_id: str) -> StoredPayout | None:
    item = table().get(keys.payout(payout_id))
    return _payout(item) if item else None


def receive(payout_id: str, now: str) -> StoredPayout | None:
    """The payout a worker's message names, noting that the message was received ``now``: one
    UpdateItem in place of the read, so knowing which payouts have a message in flight costs the
    worker no extra call. None when there is no such payout."""
    try:
        item = table().update(keys.payout(payout_id), "SET received_at = :now", "attribute_exists(pk)", values={":now": now})
    except ConditionFailed:
        return None
    return _payout(item) if item else None


def take_ticket(payout_id: str, held: str | None, new: str) -> bool:
    """Replace the payout's postponement ticket ``held`` (None: it has none yet) by ``new`` while
    the payout is still pending: True if this caller's message was the live one and is to send the
    next. Two copies of one message (a duplicate delivery, a redelivery after a killed
    invocation) hold the same ticket, and the condition lets only one of them win."""
    held_now = "ticket = :held" if held is not None else "attribute_not_exists(ticket)"
    try:
        table().update(
            keys.payout(payout_id),
            "SET ticket = :new",
            f"#status = :pending AND {held_now}",
            names={"#status": "status"},
            values={":new": new, ":pending": PayoutStatus.PENDING.value, **({":held": held} if held is not None else {})},
            returns="NONE",
        )
    except ConditionFailed:
        return False
    return True


def get_many(payout_ids: list[str]) -> dict[str, StoredPayout]:
    return {payout.id: payout for payout in (_payout(item) for item in table().batch_get(keys.payout(pid) for pid in payout_ids))}


def list_for_user(user_id: str, limit: int, cursor: str | None) -> tuple[list[StoredPayout], str | None]:
    """The user's payouts, newest first, one page at a time."""
    index_pk = keys.user_payouts_index(user_id)
    start = decode_cursor(cursor, gsi1pk=index_pk)
    page = table().query("gsi1pk = :pk", {":pk": index_pk}, index=PAYOUTS_INDEX, limit=limit, start_key=start, newest_first=True)
    return [_payout(item) for item in page.items], encode_cursor(page.last_key)


# -------------------------------------------------------------------- status changes
def mark_submitted(payout_id: str, provider_reference: str, now: str) -> StoredPayout | None:
    """``pending`` → ``submitted``; None when the payout had already moved on (a duplicate delivery
    or a webhook got there first), which the condition decides, not a prior read."""
    condition, names, values = transition_condition(PayoutStatus.SUBMITTED)
    try:
        item = table().update(
            keys.payout(payout_id),
            "SET #status = :target, provider_reference = :reference, updated_at = :now, version = version + :one",
            condition,
            names=names,
            values={**values, ":target": PayoutStatus.SUBMITTED.value, ":reference": provider_reference, ":now": now, ":one": 1},
        )
    except ConditionFailed:
        return None
    return _payout(item) if item else None


def transition_actions(
    payout: StoredPayout,
    target: PayoutStatus,
    now: str,
    *,
    event_id: str | None = None,
    provider_reference: str | None = None,
    failure_reason: str | None = None,
) -> list[Write]:
    """The writes that move ``payout`` to ``target`` in a caller's transaction: the conditional,
    forward-only update (the stored payout comes back when its condition fails) and, for a
    terminal status, the outbox marker's delete, so no payout is final while still marked."""
    db = table()
    condition, names, values = transition_condition(target)
    update = "SET #status = :target, updated_at = :now, version = if_not_exists(version, :zero) + :one"
    values = {**values, ":target": target.value, ":now": now, ":zero": 0, ":one": 1}
    if event_id:
        update += ", last_event_id = :event"
        values[":event"] = event_id
    if provider_reference:
        update += ", provider_reference = if_not_exists(provider_reference, :reference)"
        values[":reference"] = provider_reference
    if target is PayoutStatus.FAILED:
        update += ", failure_reason = :reason"
        values[":reason"] = failure_reason or "unspecified"
    actions = [db.update_action(keys.payout(payout.id), update, condition, names, values, return_on_failure=True)]
    if target.terminal:
        actions.append(db.delete_action(keys.outbox(payout.id, payout.created_at)))
    if payout.funds_reserved and target in _MONEY_MOVES:
        actions.extend(_MONEY_MOVES[target](payout.user_id, payout.currency, payout.amount, payout.id, now))
    return actions


# What a payout's end does to its reserve: a failed payout gives it back, a paid one spends it.
_MONEY_MOVES = {PayoutStatus.FAILED: balances.release_actions, PayoutStatus.PAID: balances.settle_actions}


class LedgerMismatch(Exception):
    """A payout's move was allowed but its reserve could not be released or settled (the balance
    holds less reserved than the payout, or its entry exists): an invariant is broken. Never
    swallowed: the message is retried and dead-lettered, and the alarms say so."""


def check_transition_cancelled(cancelled: TransactionCancelled, payout_index: int) -> None:
    """Raise LedgerMismatch when a transition's transaction failed on the balance or the ledger
    rather than on the payout's own condition (the payout had moved on)."""
    if cancelled.reason(payout_index).code != "ConditionalCheckFailed":
        codes = [reason.code for reason in cancelled.reasons]
        raise LedgerMismatch(f"a payout's reserve could not be moved: {codes}") from cancelled


def mark_failed(payout: StoredPayout, reason: str, now: str) -> bool:
    """Move to the terminal ``failed`` (with its marker's delete and its reserve's release);
    False if it had moved on."""
    try:
        table().transact_write(transition_actions(payout, PayoutStatus.FAILED, now, failure_reason=reason))
    except TransactionCancelled as cancelled:
        check_transition_cancelled(cancelled, 0)
        return False
    return True


# -------------------------------------------------------------------- the outbox
def outbox_shards() -> range:
    return range(keys.OUTBOX_SHARDS)


def old_markers(shard: int, older_than: str, limit: int = 100) -> list[OutboxMarker]:
    """The markers of ``shard`` created before ``older_than`` (a :mod:`payrail.clock` text), oldest first."""
    found: list[OutboxMarker] = []
    start = None
    partition = keys.outbox_shard(shard)
    while True:
        page = table().query("pk = :pk AND sk < :cutoff", {":pk": partition, ":cutoff": older_than}, limit=limit, start_key=start)
        found.extend(_marker(item) for item in page.items)
        if not page.last_key:
            return found
        start = page.last_key


def claim_requeue(marker: OutboxMarker, now: str, last_before: str) -> bool:
    """Note on ``marker`` that its payout is re-enqueued at ``now``, if the marker is still as it
    was read (same re-enqueue count: no concurrent run got there first), it was last re-enqueued
    before ``last_before`` and it still exists (the payout is not final): True if this caller is
    to send the message."""
    try:
        table().update(
            marker.key,
            "SET requeued_at = :now, requeue_count = :next",
            condition=(
                "attribute_exists(pk) AND (attribute_not_exists(requeue_count) OR requeue_count = :seen)"
                " AND (attribute_not_exists(requeued_at) OR requeued_at < :last)"
            ),
            values={":now": now, ":next": marker.requeue_count + 1, ":seen": marker.requeue_count, ":last": last_before},
            returns="NONE",
        )
    except ConditionFailed:
        return False
    return True


def note_hand_off_failed(payout_id: str, created_at: str) -> None:
    """Mark the payout's outbox marker: the API could not send its message, so reconciliation
    re-enqueues it once the grace period has passed instead of waiting to be sure it is lost."""
    table().update(
        keys.outbox(payout_id, created_at), "SET hand_off_failed = :yes", "attribute_exists(pk)", values={":yes": True}, returns="NONE"
    )


def delete_marker(marker: OutboxMarker) -> None:
    """Remove the marker a finished payout left behind (its transition normally deletes it)."""
    table().delete(marker.key)
