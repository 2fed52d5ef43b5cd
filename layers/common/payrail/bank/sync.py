"""One sync run of one bank connection: lease, tokens, paging, idempotent upserts, commit.

Counting is exact and relative to the state the run began from, even across a restart after a
mutation-during-pagination error or a previous run that failed after writing some pages:

* the connection counts its committed runs (``sync_generation``); every stored transaction
  carries the hash of its content and, when a run wrote it, the generation that run started
  from (``base_generation``) and the hash it had before (``base_hash``, absent when new);
* a run starting from generation G compares the bank's content with the stored item's
  ``base_hash`` when ``base_generation`` is G (a run from the same committed state wrote it but
  never committed) and with its current hash otherwise; only a different current hash costs a
  write;
* the latest outcome per transaction id wins, so a transaction seen on several pages (or again
  after a restart) is counted once.

The cursor is stored only after every page has been written, conditional on still holding the
lease, so a failure anywhere leaves it where the last complete sync left it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from payrail import clock, retry
from payrail.bank import envelope
from payrail.bank.envelope import ProviderTokens, Sealed
from payrail.bank.provider import (
    BankClient,
    BankGrantRejected,
    BankRateLimited,
    BankUnauthorized,
    MutationDuringPagination,
    SyncPage,
)
from payrail.bank.schedule import new_sync_id
from payrail.clock import Deadline
from payrail.db import Item
from payrail.db import bank as store
from payrail.db.bank import LeaseHeld, LeaseLost, SyncCovered
from payrail.errors import DependencyFailure, RetryLater
from payrail.observability import logger, metrics
from payrail.settings import BankSyncSettings

REMOVED = "REMOVED"
CONTENT_FIELDS = ("account_id", "amount", "currency", "date", "description", "pending")
REFRESH_SKEW_SECONDS = 30
LEASE_MARGIN_SECONDS = 30
MAX_RESTARTS = 3
BACKOFF_BASE_SECONDS = 1.0

# When a sync cannot run now because the bank or the table failed, its message comes back after.
# (A message whose connection another run holds is acknowledged instead: see sync_connection.)
DEPENDENCY_RETRY_SECONDS = 30
SYNC_ID_PATTERN = r"^sync_[0-9a-f]{32}$"

sleep: Callable[[float], None] = time.sleep  # tests observe the waits through this


class SyncRequest(BaseModel):
    """The body of a bank-sync queue message: an on-demand request names its sync, the
    scheduled fan-out does not."""

    connection_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    sync_id: str | None = Field(default=None, pattern=SYNC_ID_PATTERN)


class ReauthRequired(Exception):
    """The bank refuses our tokens even after one refresh; the user has to link again."""


@dataclass
class RunState:
    start_cursor: str
    generation: int = 0
    outcomes: dict[str, str] = field(default_factory=dict)
    pages: int = 0
    written: int = 0

    def summary(self, status: str) -> dict[str, Any]:
        counts = dict.fromkeys(("inserted", "updated", "unchanged", "removed"), 0)
        for outcome in self.outcomes.values():
            counts[outcome] += 1
        return {
            **counts,
            "pages": self.pages,
            "written": self.written,
            "status": status,
            "finished_at": clock.text(),
        }


def content_hash(record: Mapping[str, Any]) -> str:
    content = {name: record.get(name) for name in CONTENT_FIELDS}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _clean(record: Mapping[str, Any]) -> dict[str, Any]:
    """The provider's transaction reduced to the fields we keep, refusing a non-integer amount."""
    amount = record.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise ValueError("transaction amount must be integer minor units")
    return {"transaction_id": str(record["transaction_id"]), **{name: record.get(name) for name in CONTENT_FIELDS}}


def apply_page(connection_id: str, user_id: str, page: SyncPage, state: RunState) -> None:
    """Upsert and remove one page's transactions with one batch read and as few batch writes as changed."""
    latest: dict[str, dict[str, Any] | None] = {}
    for record in [*page.added, *page.modified]:
        cleaned = _clean(record)
        latest[cleaned["transaction_id"]] = cleaned
    for record in page.removed:
        latest[str(record["transaction_id"])] = None
    if not latest:
        return
    existing = store.get_transactions(connection_id, latest)
    now = clock.text()
    writes: list[Item] = []
    for transaction_id, change in latest.items():
        stored = existing.get(transaction_id)
        if stored is None:
            original: str | None = None
        elif stored.base_generation == state.generation:
            original = stored.base_hash
        else:
            original = stored.content_hash
        present_before = original not in (None, REMOVED)
        current = stored.content_hash if stored else None
        if change is None:
            if present_before:
                state.outcomes[transaction_id] = "removed"
            else:
                state.outcomes.pop(transaction_id, None)
            if stored is not None and current != REMOVED:
                tombstone: dict[str, Any] = {"transaction_id": transaction_id, "content_hash": REMOVED, "removed_at": now}
                tombstone.update(_base(state, original))
                tombstone["expires_at"] = int(time.time()) + 30 * 86400
                writes.append(store.transaction_item(connection_id, user_id, tombstone, visible=False))
            continue
        record = change
        digest = content_hash(record)
        if not present_before:
            state.outcomes[transaction_id] = "inserted"
        elif original == digest:
            state.outcomes[transaction_id] = "unchanged"
        else:
            state.outcomes[transaction_id] = "updated"
        if current != digest:
            item = {**record, "content_hash": digest, "updated_at": now, **_base(state, original)}
            writes.append(store.transaction_item(connection_id, user_id, item, visible=True))
    store.write_transactions(writes)
    state.written += len(writes)


def _base(state: RunState, original: str | None) -> dict[str, Any]:
    base: dict[str, Any] = {"base_generation": state.generation}
    if original is not None:
        base["base_hash"] = original
    return base


def _sealed_tokens(connection_id: str) -> Sealed:
    stored = store.get_tokens(connection_id)
    if stored is None:
        raise envelope.TokensUnreadable("The connection has no stored tokens.")
    return Sealed(ciphertext=stored.tokens_ciphertext, nonce=stored.tokens_nonce, encrypted_key=stored.tokens_key)


def sealed_attributes(sealed: Sealed) -> dict[str, bytes]:
    return {"tokens_ciphertext": sealed.ciphertext, "tokens_nonce": sealed.nonce, "tokens_key": sealed.encrypted_key}


def sync_connection(
    settings: BankSyncSettings, connection_id: str, deadline: Deadline, sync_id: str | None = None
) -> dict[str, Any] | None:
    """The sync worker's use case: one run over ``connection_id`` (for the requested ``sync_id``,
    if the message names one) within ``deadline``.

    A message that another run already covers is done, not retried (it would only come back to
    find the lease held again, and again, until the dead-letter queue): when another run holds the
    lease, that run took the connection's pending sync, or started after this message's request
    was joined to it, and its own message comes back if it dies; when the connection no longer
    holds ``sync_id``, a run that started after the request has finished it. Both answers come
    from the failed condition of the one lease write, so a run finishing at that moment cannot
    fall between a read and a decision.

    RetryLater when it cannot run now: the bank asks to wait, or a dependency failed."""
    logger.append_keys(connection_id=connection_id)
    try:
        return SyncRun(settings, connection_id, deadline.remaining, sync_id=sync_id).run()
    except (LeaseHeld, LeaseLost):
        logger.info("the connection is being synced by another run, which covers this message; done", extra={"sync_id": sync_id})
        metrics.add_metric(name="BankSyncsCovered", unit="Count", value=1)
        return None
    except SyncCovered:
        logger.info("the requested sync was already run; done", extra={"sync_id": sync_id})
        metrics.add_metric(name="BankSyncsCovered", unit="Count", value=1)
        return None
    except DependencyFailure as failure:
        raise RetryLater(f"bank sync failed on a dependency: {failure.detail}", DEPENDENCY_RETRY_SECONDS) from failure


class SyncRun:
    """One run over one connection. ``remaining`` gives the Lambda's remaining seconds."""

    def __init__(
        self,
        settings: BankSyncSettings,
        connection_id: str,
        remaining: Callable[[], float],
        owner: str | None = None,
        sync_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.connection_id = connection_id
        self.sync_id = sync_id
        self.remaining = remaining
        self.owner = owner or str(uuid.uuid4())
        self.refreshed = False

    def run(self) -> dict[str, Any] | None:
        now = int(time.time())
        lease_until = now + int(self.remaining()) + LEASE_MARGIN_SECONDS
        connection = store.acquire_lease(self.connection_id, self.owner, now, lease_until, self.sync_id, new_sync_id())
        if connection is None:
            logger.info("bank connection no longer exists; nothing to sync", extra={"connection_id": self.connection_id})
            return None
        logger.append_keys(sync_id=connection.sync_id)
        if connection.status == "reauth_required":
            store.finish_without_commit(self.connection_id, self.owner, None, settled=True)
            return None
        state = RunState(start_cursor=connection.sync_cursor, generation=connection.sync_generation)
        committed = False
        try:
            tokens = envelope.open_sealed(_sealed_tokens(self.connection_id), self.connection_id)
            with BankClient(self.settings) as bank:
                if tokens.access_expires_at <= time.time() + REFRESH_SKEW_SECONDS:
                    tokens = self._refresh(bank, tokens)
                cursor = self._page_all(bank, tokens, connection.user_id, state)
            summary = state.summary("succeeded")
            store.commit_sync(self.connection_id, self.owner, int(time.time()), cursor, summary, state.generation + 1)
            committed = True
        except ReauthRequired:
            store.finish_without_commit(
                self.connection_id, self.owner, state.summary("reauth_required"), status="reauth_required", settled=True
            )
            committed = True
            logger.warning("bank refused the connection's tokens; the user must link again", extra={"connection_id": self.connection_id})
            return state.summary("reauth_required")
        except envelope.TokensUnreadable:
            store.finish_without_commit(self.connection_id, self.owner, state.summary("failed"), status="reauth_required", settled=True)
            committed = True
            logger.error("bank connection tokens cannot be decrypted", extra={"connection_id": self.connection_id})
            return state.summary("failed")
        finally:
            if not committed:
                store.finish_without_commit(self.connection_id, self.owner, state.summary("retrying"))
        metrics.add_metric(name="BankTransactionsWritten", unit="Count", value=state.written)
        logger.info("bank sync finished", extra={"connection_id": self.connection_id, "summary": summary})
        return summary

    def _refresh(self, bank: BankClient, tokens: ProviderTokens) -> ProviderTokens:
        """At most once per run; the rotated tokens are stored before the new access token is used."""
        if self.refreshed:
            raise ReauthRequired()
        self.refreshed = True
        try:
            fresh = bank.refresh(tokens.refresh_token)
        except BankGrantRejected as error:
            raise ReauthRequired() from error
        sealed = envelope.seal(fresh, self.connection_id, self.settings.tokens_key_id)
        store.save_tokens(self.connection_id, self.owner, int(time.time()), sealed_attributes(sealed), fresh.access_expires_at)
        logger.info("bank tokens refreshed", extra={"connection_id": self.connection_id})
        return fresh

    def _page_all(self, bank: BankClient, tokens: ProviderTokens, user_id: str, state: RunState) -> str:
        cursor = state.start_cursor
        waits = restarts = 0
        while True:
            try:
                page = bank.transactions_sync(tokens.access_token, cursor, self.settings.page_size)
            except BankUnauthorized:
                tokens = self._refresh(bank, tokens)
                continue
            except BankRateLimited as limited:
                delay = (
                    limited.retry_after
                    if limited.retry_after is not None
                    else retry.backoff(waits, BACKOFF_BASE_SECONDS, self.settings.max_wait_seconds)
                )
                if waits >= self.settings.max_rate_limit_waits or delay > self.settings.max_wait_seconds or delay + 5 > self.remaining():
                    raise RetryLater("the bank keeps rate limiting", int(delay) + 1, quiet=True) from limited
                waits += 1
                logger.info("bank rate limited; waiting", extra={"connection_id": self.connection_id, "seconds": delay})
                sleep(delay)
                continue
            except MutationDuringPagination as mutated:
                restarts += 1
                if restarts > MAX_RESTARTS:
                    raise RetryLater("the bank's data keeps changing during pagination", 30, quiet=True) from mutated
                logger.info("bank data changed during pagination; restarting", extra={"connection_id": self.connection_id})
                cursor, state.pages = state.start_cursor, 0
                continue
            apply_page(self.connection_id, user_id, page, state)
            state.pages += 1
            cursor = page.next_cursor or cursor
            if not page.has_more:
                return cursor
