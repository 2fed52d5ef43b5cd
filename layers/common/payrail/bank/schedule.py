"""Getting syncs onto the queue: the scheduled fan-out of due connections and the on-demand request."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from payrail import clock, queues
from payrail.auth.tokens import Principal
from payrail.clock import Deadline
from payrail.db import bank as store
from payrail.observability import logger
from payrail.ownership import owned
from payrail.settings import BankSyncQueueSettings


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


def request_sync(settings: BankSyncQueueSettings, principal: Principal, connection_id: str) -> dict[str, Any]:
    """Queue a sync of the caller's connection now; another user's connection does not exist."""
    owned(store.get_connection(connection_id), principal.user_id, "No such bank connection.")
    message_id = queues.send(settings.bank_sync_queue_url, {"connection_id": connection_id})
    logger.info("bank sync requested", extra={"connection_id": connection_id})
    return {"connection_id": connection_id, "status": "queued", "message_id": message_id}
