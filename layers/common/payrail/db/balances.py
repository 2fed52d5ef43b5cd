"""Balances and the ledger: the only module that writes either.

Items written here and nowhere else: a user's balance per currency (``available`` and
``reserved``, integer minor units), the append-only ledger entries that explain it, the funding
reference that names a user to the payment provider, and the ledger audit's progress.

Nothing here runs on its own: every movement is a pair of actions (the balance's conditional
update and the ledger entry's put) that a caller adds to the transaction that causes it.

* **reserve** (the payout's create transaction): ``available`` → ``reserved`` under the condition
  ``available >= amount``; a user never funded has no balance item, which the condition reads
  as 0 available.
* **release** (the transaction that makes a payout ``failed``): ``reserved`` → ``available``.
* **settle** (the transaction that makes a payout ``paid``): the amount leaves ``reserved``.
* **funding** (the transaction that records a ``funding.received`` event): ``available`` grows.

A ledger entry's id is derived from what it records (the payout and the movement, or the
funding event), and it is put only if it does not exist: a retried write cannot append twice,
and no code path updates or deletes an entry. So for every user and currency
``available + reserved = Σ funding - Σ settle``, and ``reserved = Σ reserve - Σ release - Σ settle``:
what the scheduled audit (:func:`audit_balance`) recomputes.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from payrail.db import ConditionFailed, Item, Write, decode_cursor, encode_cursor, keys, table

LEDGER_INDEX = "gsi1"
# What a balance item and a ledger entry say they are (the table's other readers skip them).
BALANCE_ITEM = "balance"
LEDGER_ITEM = "ledger_entry"


class EntryType(StrEnum):
    FUNDING = "funding"
    RESERVE = "reserve"
    RELEASE = "release"
    SETTLE = "settle"


class Balance(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: str
    currency: str
    available: int = 0
    reserved: int = 0
    updated_at: str
    version: int = 0


class LedgerEntry(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    type: EntryType
    amount: int
    currency: str
    payout_id: str | None = None
    event_id: str | None = None
    created_at: str


def entry_id(kind: EntryType, subject: str) -> str:
    """The id of the one entry of ``kind`` for ``subject`` (a payout id, or a funding event's id)."""
    return "le_" + hashlib.sha256(f"{kind.value}#{subject}".encode()).hexdigest()[:32]


def _entry(
    user_id: str, currency: str, kind: EntryType, amount: int, now: str, *, payout_id: str | None = None, event_id: str | None = None
) -> Write:
    identifier = entry_id(kind, payout_id or event_id or "")
    item: Item = {
        **keys.ledger_entry(user_id, currency, identifier),
        "gsi1pk": keys.user_ledger_index(user_id, currency),
        "gsi1sk": f"{now}#{identifier}",
        "item_type": LEDGER_ITEM,
        "id": identifier,
        "user_id": user_id,
        "type": kind.value,
        "amount": amount,
        "currency": currency,
        "payout_id": payout_id,
        "event_id": event_id,
        "created_at": now,
    }
    return table().put_action(item, "attribute_not_exists(pk)")


def _move(user_id: str, currency: str, changes: str, condition: str | None, amount: int, now: str, return_on_failure: bool) -> Write:
    """The balance's update: ``changes`` plus what every write sets (its time, its version and its
    place in the changed-balances index the audit reads)."""
    return table().update_action(
        keys.balance(user_id, currency),
        f"SET {changes}, updated_at = :now, version = if_not_exists(version, :zero) + :one,"
        " user_id = :user, currency = :currency, item_type = :type, gsi1pk = :changed, gsi1sk = :changed_at",
        condition,
        values={
            ":amount": amount,
            ":now": now,
            ":zero": 0,
            ":one": 1,
            ":user": user_id,
            ":currency": currency,
            ":type": BALANCE_ITEM,
            ":changed": keys.balance_changed_shard(user_id),
            ":changed_at": f"{now}#{user_id}#{currency}",
        },
        return_on_failure=return_on_failure,
    )


def reserve_actions(user_id: str, currency: str, amount: int, payout_id: str, now: str) -> list[Write]:
    """Move ``amount`` from available to reserved if that much is available (the stored balance
    comes back with a failed condition; none at all means never funded), with its entry."""
    return [
        _move(
            user_id,
            currency,
            "available = available - :amount, reserved = if_not_exists(reserved, :zero) + :amount",
            "available >= :amount",
            amount,
            now,
            return_on_failure=True,
        ),
        _entry(user_id, currency, EntryType.RESERVE, amount, now, payout_id=payout_id),
    ]


def release_actions(user_id: str, currency: str, amount: int, payout_id: str, now: str) -> list[Write]:
    """A failed payout's amount back from reserved to available, with its entry."""
    return [
        _move(
            user_id,
            currency,
            "available = available + :amount, reserved = reserved - :amount",
            "reserved >= :amount",
            amount,
            now,
            return_on_failure=False,
        ),
        _entry(user_id, currency, EntryType.RELEASE, amount, now, payout_id=payout_id),
    ]


def settle_actions(user_id: str, currency: str, amount: int, payout_id: str, now: str) -> list[Write]:
    """A paid payout's amount leaves reserved, with its entry."""
    return [
        _move(user_id, currency, "reserved = reserved - :amount", "reserved >= :amount", amount, now, return_on_failure=False),
        _entry(user_id, currency, EntryType.SETTLE, amount, now, payout_id=payout_id),
    ]


def credit_actions(user_id: str, currency: str, amount: int, event_id: str, now: str) -> list[Write]:
    """Money received: available grows by ``amount`` (the balance is created by its first funding)."""
    return [
        _move(
            user_id,
            currency,
            "available = if_not_exists(available, :zero) + :amount, reserved = if_not_exists(reserved, :zero)",
            None,
            amount,
            now,
            False,
        ),
        _entry(user_id, currency, EntryType.FUNDING, amount, now, event_id=event_id),
    ]


def available_of(stored: Item | None) -> int:
    """What a balance item handed back by a failed reserve says is available (0 when none exists)."""
    return int((stored or {}).get("available", 0))


# -------------------------------------------------------------------- reads
def balances_of(user_id: str) -> list[Balance]:
    """Every balance of the user, one per currency, as of now (a consistent read)."""
    found: list[Balance] = []
    start = None
    while True:
        page = table().query("pk = :pk", {":pk": keys.balance_partition(user_id)}, start_key=start, consistent=True)
        found.extend(Balance.model_validate(item) for item in page.items)
        if not page.last_key:
            return found
        start = page.last_key


def ledger_page(user_id: str, currency: str, limit: int, cursor: str | None) -> tuple[list[LedgerEntry], str | None]:
    """The user's ledger in ``currency``, newest first, one page at a time."""
    index_pk = keys.user_ledger_index(user_id, currency)
    start = decode_cursor(cursor, gsi1pk=index_pk)
    page = table().query("gsi1pk = :pk", {":pk": index_pk}, index=LEDGER_INDEX, limit=limit, start_key=start, newest_first=True)
    return [LedgerEntry.model_validate(item) for item in page.items], encode_cursor(page.last_key)


# -------------------------------------------------------------------- funding references
def funding_reference(user_id: str) -> str:
    """The reference the user's money is sent with: derived from the user id, so it is stable, and
    opaque, so the id itself is not handed to a bank."""
    return "PRF" + hashlib.sha256(f"funding#{user_id}".encode()).hexdigest()[:20].upper()


def register_funding_reference(user_id: str) -> str:
    """The user's funding reference, recorded (once) so a funding event can name the user."""
    reference = funding_reference(user_id)
    with contextlib.suppress(ConditionFailed):  # recorded before: the reference never changes
        table().put({**keys.funding_reference(reference), "user_id": user_id}, "attribute_not_exists(pk)")
    return reference


def user_of_funding_reference(reference: str) -> str | None:
    item = table().get(keys.funding_reference(reference))
    return str(item["user_id"]) if item else None


# -------------------------------------------------------------------- the audit
class AuditVerdict(StrEnum):
    BALANCED = "balanced"
    DIFFERENT = "different"
    MOVING = "moving"


@dataclass(frozen=True)
class AuditResult:
    user_id: str
    currency: str
    verdict: AuditVerdict
    available: int = 0
    reserved: int = 0
    ledger_available: int = 0
    ledger_reserved: int = 0


def changed_balances(shard: str, since: str, until: str) -> list[tuple[str, str]]:
    """(user, currency) of every balance of ``shard`` whose last change is in [since, until)."""
    found: list[tuple[str, str]] = []
    start = None
    while True:
        page = table().query(
            "gsi1pk = :pk AND gsi1sk BETWEEN :since AND :until",
            {":pk": shard, ":since": since, ":until": until},
            index=LEDGER_INDEX,
            start_key=start,
        )
        found.extend((str(item["user_id"]), str(item["currency"])) for item in page.items)
        if not page.last_key:
            return found
        start = page.last_key


def _ledger_sums(user_id: str, currency: str) -> dict[str, int]:
    sums = {kind.value: 0 for kind in EntryType}
    start = None
    while True:
        page = table().query("pk = :pk", {":pk": keys.ledger_partition(user_id, currency)}, start_key=start, consistent=True)
        for item in page.items:
            sums[str(item["type"])] += int(item["amount"])
        if not page.last_key:
            return sums
        start = page.last_key


def audit_balance(user_id: str, currency: str) -> AuditResult:
    """Recompute the balance from its ledger. The balance is read before and after the ledger; if
    it changed in between the comparison would mean nothing, and the result says ``moving``."""
    db = table()
    before: dict[str, Any] = db.get(keys.balance(user_id, currency)) or {}
    sums = _ledger_sums(user_id, currency)
    after: dict[str, Any] = db.get(keys.balance(user_id, currency)) or {}
    if before.get("version") != after.get("version"):
        return AuditResult(user_id, currency, AuditVerdict.MOVING)
    ledger_available = sums["funding"] - sums["reserve"] + sums["release"]
    ledger_reserved = sums["reserve"] - sums["release"] - sums["settle"]
    available, reserved = int(after.get("available", 0)), int(after.get("reserved", 0))
    verdict = AuditVerdict.BALANCED if (available, reserved) == (ledger_available, ledger_reserved) else AuditVerdict.DIFFERENT
    return AuditResult(user_id, currency, verdict, available, reserved, ledger_available, ledger_reserved)


def audit_watermark() -> str | None:
    item = table().get(keys.ledger_audit_state())
    return str(item["audited_until"]) if item else None


def save_audit_watermark(until: str) -> None:
    """Move the audit's watermark forward (never back: a slower, older run cannot undo a newer one)."""
    with contextlib.suppress(ConditionFailed):
        table().put(
            {**keys.ledger_audit_state(), "audited_until": until},
            "attribute_not_exists(pk) OR audited_until < :until",
            values={":until": until},
        )
