"""Payout items: the one-transaction create, reads, listing and the worker's status changes.

The create path is one ``TransactWriteItems`` of four actions (see :func:`create`). When its
cancellation reasons say the idempotency record already exists, ``ReturnValuesOnConditionCheckFailure``
has handed the stored record back in the same call, so a replay costs one call and there is no
"in progress" window in which a concurrent duplicate could create a second payout.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from payrail.db import ConditionFailed, Item, Page, TransactionCancelled, decode_cursor, encode_cursor, keys, table
from payrail.payouts.status import PayoutStatus, transition_condition

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
RATE_WINDOW_SECONDS = 60
PAYOUTS_INDEX = "gsi1"

# The order of the create transaction's actions; cancellation reasons line up with it.
_IDEMPOTENCY, _PAYOUT, _OUTBOX, _RATE = range(4)


def idempotency_key(user_id: str, key: str) -> dict[str, str]:
    """The idempotency record of ``key`` for ``user_id``; the key is hashed so any printable
    key makes a short, safe partition key and the raw key never sits in the table."""
    return {"pk": f"IDEM#{user_id}#{hashlib.sha256(key.encode()).hexdigest()}", "sk": "IDEM"}


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


def create(
    *,
    user_id: str,
    key: str,
    fingerprint: str,
    payout: dict[str, Any],
    now: float,
    rate_limit: int,
) -> Created | Replayed | RateLimitHit:
    """Write the idempotency record, the payout, its outbox marker and the rate-limit count in
    ONE transaction, or write nothing and say why."""
    db = table()
    body = dict(payout)
    window = int(now // RATE_WINDOW_SECONDS)
    window_end = (window + 1) * RATE_WINDOW_SECONDS
    record = {
        **idempotency_key(user_id, key),
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
    ]
    try:
        db.transact_write(actions)
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
        raise
    return Created(201, body)


def get(payout_id: str) -> Item | None:
    return table().get(keys.payout(payout_id))


def list_for_user(user_id: str, limit: int, cursor: str | None) -> tuple[list[Item], str | None]:
    """The user's payouts, newest first, one page at a time."""
    index_pk = keys.user_payouts_index(user_id)
    start = decode_cursor(cursor, gsi1pk=index_pk)
    page: Page = table().query("gsi1pk = :pk", {":pk": index_pk}, index=PAYOUTS_INDEX, limit=limit, start_key=start, newest_first=True)
    return page.items, encode_cursor(page.last_key)


def mark_submitted(payout_id: str, provider_reference: str, now: str) -> Item | None:
    """``pending`` → ``submitted``; None when the payout had already moved on (a duplicate delivery
    or a webhook got there first), which the condition decides, not a prior read."""
    condition, names, values = transition_condition(PayoutStatus.SUBMITTED)
    try:
        return table().update(
            keys.payout(payout_id),
            "SET #status = :target, provider_reference = :reference, updated_at = :now, version = version + :one",
            condition,
            names=names,
            values={**values, ":target": PayoutStatus.SUBMITTED.value, ":reference": provider_reference, ":now": now, ":one": 1},
        )
    except ConditionFailed:
        return None


def mark_failed(payout: Item, reason: str, now: str) -> bool:
    """Move to the terminal ``failed`` and delete the outbox marker in the same transaction, so
    reconciliation never chases a finished payout and no payout is final while still marked."""
    db = table()
    condition, names, values = transition_condition(PayoutStatus.FAILED)
    try:
        db.transact_write(
            [
                db.update_action(
                    keys.payout(payout["id"]),
                    "SET #status = :target, failure_reason = :reason, updated_at = :now, version = version + :one",
                    condition,
                    names=names,
                    values={**values, ":target": PayoutStatus.FAILED.value, ":reason": reason, ":now": now, ":one": 1},
                ),
                db.delete_action(keys.outbox(payout["id"], payout["created_at"])),
            ]
        )
    except TransactionCancelled:
        return False
    return True
