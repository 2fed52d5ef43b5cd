"""Bank connections, their sync schedule and lease, and their transactions in the one table.

Every rule that matters is a condition on the write that needs it:

* a lease is taken only when there is none or it has expired, and everything a sync run writes
  to its connection afterwards (rotated tokens, the new cursor, the summary) is conditional on
  still holding it;
* the scheduled fan-out claims a due connection by moving its next-due time forward only if it
  is still the time it read, so two overlapping schedules cannot both enqueue it;
* a sync is queued or running while the connection holds its ``sync_id``: an on-demand request
  sets one only when there is none (:func:`request_sync`), so a request while one is queued or
  running joins it; a run adopts the connection's ``sync_id`` (or sets its own) as it takes the
  lease, and removes it when the run is over, committed or given up for good. A failed run that
  will be retried keeps it. A message for a sync id the connection no longer holds was covered
  by a run that started after it was requested (:class:`SyncCovered`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from payrail.db import ConditionFailed, Item, Page, TransactionCancelled, decode_cursor, encode_cursor, keys, table


class StoredConnection(BaseModel):
    """A bank connection as the table holds it (its tokens are an item of their own: StoredTokens)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    connection_id: str
    user_id: str
    institution: str = "sandbox"
    status: Literal["active", "reauth_required"] = "active"
    created_at: str
    accounts: list[dict[str, str]] = []
    sync_cursor: str = ""
    sync_generation: int = 0
    last_sync: dict[str, Any] | None = None
    access_expires_at: int = 0
    sync_id: str | None = None
    sync_requested_at: int | None = None
    lease_expires_at: int | None = None


class StoredTokens(BaseModel):
    """A connection's provider tokens as the table holds them: sealed (``payrail.bank.envelope``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    connection_id: str
    tokens_ciphertext: bytes
    tokens_nonce: bytes
    tokens_key: bytes


class StoredTransaction(BaseModel):
    """A synced transaction (or its tombstone, ``content_hash`` REMOVED) as the table holds it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    transaction_id: str
    connection_id: str
    user_id: str
    content_hash: str
    base_generation: int | None = None
    base_hash: str | None = None
    account_id: str | None = None
    amount: int = 0
    currency: str | None = None
    date: str | None = None
    description: str | None = None
    pending: bool = False


@dataclass(frozen=True)
class DueSync:
    connection_id: str
    due_at: str


class LeaseHeld(Exception):
    """Another sync run holds the connection's lease."""


class LeaseLost(Exception):
    """This run's lease expired and was taken over, so its writes to the connection were refused."""


class SyncCovered(Exception):
    """The connection no longer holds the sync id a message asked for: a run that started after
    that sync was requested has finished it (or a later request replaced it)."""


@dataclass(frozen=True)
class RequestedSync:
    """The sync a request queued or joined."""

    user_id: str
    sync_id: str
    joined: bool
    running: bool


# -------------------------------------------------------------------- connections
def create_connection(item: Mapping[str, Any], sealed: Mapping[str, bytes], next_sync_at: str) -> None:
    """The connection, its sealed tokens and its schedule entry, together or not at all."""
    connection_id = str(item["connection_id"])
    connection = {
        **keys.connection(connection_id),
        "gsi1pk": keys.user_connections_index(str(item["user_id"])),
        "gsi1sk": f"{item['created_at']}#{connection_id}",
        **item,
    }
    schedule = {
        **keys.connection_schedule(connection_id),
        "connection_id": connection_id,
        "gsi1pk": keys.bank_due_shard(connection_id),
        "gsi1sk": next_sync_at,
    }
    tokens = {**keys.connection_tokens(connection_id), "connection_id": connection_id, **sealed}
    db = table()
    db.transact_write(
        [
            db.put_action(connection, condition="attribute_not_exists(pk)"),
            db.put_action(tokens, condition="attribute_not_exists(pk)"),
            db.put_action(schedule, condition="attribute_not_exists(pk)"),
        ]
    )


def get_tokens(connection_id: str) -> StoredTokens | None:
    item = table().get(keys.connection_tokens(connection_id))
    return StoredTokens.model_validate(item) if item else None


def get_connection(connection_id: str) -> StoredConnection | None:
    item = table().get(keys.connection(connection_id))
    return StoredConnection.model_validate(item) if item else None


def list_connections(user_id: str, limit: int, cursor: str | None) -> tuple[list[StoredConnection], str | None]:
    index = keys.user_connections_index(user_id)
    page: Page = table().query(
        "gsi1pk = :pk",
        {":pk": index},
        index="gsi1",
        limit=limit,
        start_key=decode_cursor(cursor, gsi1pk=index),
        newest_first=True,
    )
    return [StoredConnection.model_validate(item) for item in page.items], encode_cursor(page.last_key)


def acquire_lease(
    connection_id: str, owner: str, now: int, until: int, sync_id: str | None = None, fresh_sync_id: str | None = None
) -> StoredConnection | None:
    """The connection with the lease now held by ``owner``; None if the connection does not exist.

    The run adopts the connection's pending ``sync_id``, or records ``fresh_sync_id`` when none is
    pending. With ``sync_id`` (the message's), the lease is taken only while the connection still
    holds that id. Raises LeaseHeld when another run holds an unexpired lease, and SyncCovered
    when the connection no longer holds ``sync_id``."""
    condition = "attribute_exists(pk) AND (attribute_not_exists(lease_expires_at) OR lease_expires_at < :now)"
    values: dict[str, Any] = {":owner": owner, ":until": until, ":now": now, ":fresh": sync_id or fresh_sync_id or owner}
    if sync_id is not None:
        condition += " AND sync_id = :sid"
        values[":sid"] = sync_id
    try:
        item = table().update(
            keys.connection(connection_id),
            "SET lease_owner = :owner, lease_expires_at = :until,"
            " sync_id = if_not_exists(sync_id, :fresh), sync_requested_at = if_not_exists(sync_requested_at, :now)",
            condition=condition,
            values=values,
            return_on_failure=True,
        )
    except ConditionFailed as failed:
        if failed.item is None:
            return None
        if sync_id is not None and failed.item.get("sync_id") != sync_id:
            raise SyncCovered(connection_id) from failed
        raise LeaseHeld(connection_id) from failed
    return StoredConnection.model_validate(item) if item else None


def request_sync(connection_id: str, user_id: str, sync_id: str, now: int, stale_before: int) -> RequestedSync | None:
    """Queue ``sync_id`` for the user's connection unless a sync is already queued or running,
    in which case the request joins that one: one conditional write decides. None when the
    connection does not exist; another user's connection comes back with its owner (and is
    never written), for the caller's ownership check.

    A sync id requested before ``stale_before`` whose run is not holding the lease (its message
    was lost, or went to the dead-letter queue) is replaced rather than joined forever."""
    try:
        table().update(
            keys.connection(connection_id),
            "SET sync_id = :sid, sync_requested_at = :now",
            condition=(
                "attribute_exists(pk) AND user_id = :user AND (attribute_not_exists(sync_id)"
                " OR (sync_requested_at < :stale AND (attribute_not_exists(lease_expires_at) OR lease_expires_at < :now)))"
            ),
            values={":sid": sync_id, ":now": now, ":user": user_id, ":stale": stale_before},
            returns="NONE",
            return_on_failure=True,
        )
    except ConditionFailed as failed:
        stored = failed.item
        if stored is None:
            return None
        if stored.get("user_id") != user_id or not stored.get("sync_id"):
            return RequestedSync(user_id=str(stored.get("user_id", "")), sync_id="", joined=False, running=False)
        running = int(stored.get("lease_expires_at", 0)) >= now
        return RequestedSync(user_id=user_id, sync_id=str(stored["sync_id"]), joined=True, running=running)
    return RequestedSync(user_id=user_id, sync_id=sync_id, joined=False, running=False)


def withdraw_sync_request(connection_id: str, sync_id: str) -> None:
    """Forget a requested sync whose message could not be sent (if it is still the pending one)."""
    with contextlib.suppress(ConditionFailed):
        table().update(
            keys.connection(connection_id),
            "REMOVE sync_id, sync_requested_at",
            condition="sync_id = :sid",
            values={":sid": sync_id},
            returns="NONE",
        )


_HOLDS_LEASE = "lease_owner = :owner AND lease_expires_at >= :now"


def save_tokens(connection_id: str, owner: str, now: int, sealed: Mapping[str, bytes], access_expires_at: int) -> None:
    """Store rotated tokens (already sealed) while the lease is held: one transaction, so a run
    that lost its lease cannot overwrite the tokens of the run that took it over."""
    db = table()
    tokens = {**keys.connection_tokens(connection_id), "connection_id": connection_id, **sealed}
    try:
        db.transact_write(
            [
                db.update_action(
                    keys.connection(connection_id),
                    "SET access_expires_at = :exp",
                    condition=_HOLDS_LEASE,
                    values={":exp": access_expires_at, ":owner": owner, ":now": now},
                ),
                db.put_action(tokens, condition="attribute_exists(pk)"),
            ]
        )
    except TransactionCancelled as cancelled:
        raise LeaseLost(connection_id) from cancelled


def commit_sync(connection_id: str, owner: str, now: int, cursor: str, summary: Mapping[str, Any], generation: int) -> None:
    """The new cursor, the run's summary and generation, and the lease and the sync id released,
    in one conditional write."""
    try:
        table().update(
            keys.connection(connection_id),
            "SET sync_cursor = :cursor, last_sync = :summary, sync_generation = :generation, #status = :active"
            " REMOVE lease_owner, lease_expires_at, sync_id, sync_requested_at",
            condition=_HOLDS_LEASE,
            names={"#status": "status"},
            values={
                ":cursor": cursor,
                ":summary": dict(summary),
                ":generation": generation,
                ":active": "active",
                ":owner": owner,
                ":now": now,
            },
            returns="NONE",
        )
    except ConditionFailed as failed:
        raise LeaseLost(connection_id) from failed


def finish_without_commit(
    connection_id: str, owner: str, summary: Mapping[str, Any] | None, status: str | None = None, settled: bool = False
) -> None:
    """Release the lease (recording a failed run's summary and status when given); the cursor stays.

    ``settled``: the run is over for good (nothing to retry), so its sync id goes too; otherwise
    the sync stays queued for the message's retry."""
    sets = []
    values: dict[str, Any] = {":owner": owner}
    names: dict[str, str] = {}
    if summary is not None:
        sets.append("last_sync = :summary")
        values[":summary"] = dict(summary)
    if status is not None:
        sets.append("#status = :status")
        names["#status"] = "status"
        values[":status"] = status
    removes = "lease_owner, lease_expires_at" + (", sync_id, sync_requested_at" if settled else "")
    update = ("SET " + ", ".join(sets) + " " if sets else "") + "REMOVE " + removes
    # ConditionFailed: someone else holds it now; nothing of ours to release.
    with contextlib.suppress(ConditionFailed):
        table().update(
            keys.connection(connection_id), update, condition="lease_owner = :owner", names=names or None, values=values, returns="NONE"
        )


# -------------------------------------------------------------------- schedule
def due_connections(now_iso: str, limit: int = 500) -> list[DueSync]:
    """Schedule entries whose next-due time has passed, across every shard."""
    due: list[DueSync] = []
    for shard in keys.bank_due_shards():
        start = None
        while len(due) < limit:
            page = table().query(
                "gsi1pk = :shard AND gsi1sk <= :now", {":shard": shard, ":now": now_iso}, index="gsi1", limit=100, start_key=start
            )
            due.extend(DueSync(str(item["connection_id"]), str(item["gsi1sk"])) for item in page.items)
            start = page.last_key
            if not start:
                break
    return due[:limit]


def claim_due(connection_id: str, seen_due_at: str, next_due_at: str) -> bool:
    """Move the connection's next-due time forward if it is still ``seen_due_at``; False if another claimed it."""
    try:
        table().update(
            keys.connection_schedule(connection_id),
            "SET gsi1sk = :next",
            condition="gsi1sk = :seen",
            values={":next": next_due_at, ":seen": seen_due_at},
            returns="NONE",
        )
    except ConditionFailed:
        return False
    return True


# -------------------------------------------------------------------- transactions
def get_transactions(connection_id: str, transaction_ids: Iterable[str]) -> dict[str, StoredTransaction]:
    found = table().batch_get(keys.bank_transaction(connection_id, tid) for tid in transaction_ids)
    return {str(item["transaction_id"]): StoredTransaction.model_validate(item) for item in found}


def transaction_item(connection_id: str, user_id: str, record: Mapping[str, Any], visible: bool) -> Item:
    """The stored shape of a transaction; a tombstone (``visible`` False) leaves the user's index."""
    transaction_id = str(record["transaction_id"])
    item: Item = {**keys.bank_transaction(connection_id, transaction_id), **record, "connection_id": connection_id, "user_id": user_id}
    if visible:
        item["gsi1pk"] = keys.user_transactions_index(user_id)
        item["gsi1sk"] = f"{record.get('date', '')}#{connection_id}#{transaction_id}"
    return item


def write_transactions(items: Sequence[Mapping[str, Any]]) -> None:
    if items:
        table().batch_write(puts=items)


def list_transactions(
    user_id: str, connection_id: str | None, limit: int, cursor: str | None
) -> tuple[list[StoredTransaction], str | None]:
    """The user's visible transactions, newest first; ``connection_id`` narrows to one connection
    (a filter on the user's index, so a page may hold fewer than ``limit`` items)."""
    index = keys.user_transactions_index(user_id)
    page = table().query(
        "gsi1pk = :pk",
        {":pk": index, **({":cid": connection_id} if connection_id else {})},
        index="gsi1",
        limit=limit,
        start_key=decode_cursor(cursor, gsi1pk=index),
        newest_first=True,
        filter_expression="connection_id = :cid" if connection_id else None,
    )
    return [StoredTransaction.model_validate(item) for item in page.items], encode_cursor(page.last_key)
