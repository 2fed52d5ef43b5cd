"""Getting syncs onto the queue: the scheduled fan-out of due connections and the on-demand request."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from payrail import clock, queues
from payrail.clock import Deadline
from payrail.db import bank as store
from payrail.db import ratelimit
from payrail.db.bank import RequestedSync
from payrail.errors import DependencyFailure
from payrail.observability import logger, metrics
from payrail.ownership import owned
from payrail.settings import BankSyncQueueSettings, BankSyncRequestSettings

if TYPE_CHECKING:
    # A type only: the scheduled function imports this module and verifies no tokens (PyJWT).
    from payrail.auth.tokens import Principal

# A requested sync that has not started (or whose run stopped holding the lease) this long after
# it was requested is replaced by a new one instead of being joined: its message was lost or
# dead-lettered. Longer than the queue's visibility timeout (540 s), so a message still being
# retried is not doubled.
STALE_SYNC_REQUEST_SECONDS = 900


def new_sync_id() -> str:
    # Here rather than in payrail.bank.sync, which opens tokens (cryptography): the scheduled
    # function imports this module and ships without the cryptography layer.
    return f"sync_{uuid.uuid4().hex}"


def fan_out_bank_syncs(now: datetime, deadline: Deadline, settings: BankSyncQueueSettings) -> dict[str, Any]:
    """Enqueue one message per connection whose sync is due (batched sends).

    Each due connection is claimed first by moving its next-due time forward with a condition on
    the time read, so overlapping schedules never enqueue the same connection twice. Connections
    not claimed by ``deadline`` stay due for the next run; every one claimed is sent."""
    next_due = clock.text(now + timedelta(seconds=settings.bank_sync_interval_seconds))
    due = store.due_connections(clock.text(now))
    claimed: list[str] = []
    deferred = 0
    for entry in due:
        if deadline.passed:
            deferred += 1
        elif store.claim_due(entry.connection_id, entry.due_at, next_due):
            claimed.append(entry.connection_id)
    sent = queues.send_batch(settings.bank_sync_queue_url, [{"connection_id": cid} for cid in claimed])
    return {"due": len(due), "enqueued": sent} | ({"deferred_to_next_run": deferred} if deferred else {})


def request_sync(settings: BankSyncRequestSettings, principal: Principal, connection_id: str) -> RequestedSync:
    """Sync the caller's connection now: queue a sync, or join the one already queued or running
    for it (the same sync id comes back). Another user's connection does not exist.

    Every request counts towards the caller's per-minute limit (RateLimited, 429 with
    Retry-After, beyond it), joined ones too: a join is cheap but still a request."""
    ratelimit.consume("bank-sync", principal.user_id, settings.bank_sync_rate_limit_per_minute)
    now = int(time.time())
    requested = owned(
        store.request_sync(connection_id, principal.user_id, new_sync_id(), now, now - STALE_SYNC_REQUEST_SECONDS),
        principal.user_id,
        "No such bank connection.",
    )
    if requested.joined:
        metrics.add_metric(name="BankSyncsJoined", unit="Count", value=1)
        logger.info("bank sync request joined the pending one", extra={"connection_id": connection_id, "sync_id": requested.sync_id})
        return requested
    try:
        queues.send(settings.bank_sync_queue_url, {"connection_id": connection_id, "sync_id": requested.sync_id})
    except DependencyFailure:
        store.withdraw_sync_request(connection_id, requested.sync_id)
        raise
    logger.info("bank sync requested", extra={"connection_id": connection_id, "sync_id": requested.sync_id})
    return requested
