"""Merchant events: what a change in the table means to a client, read from the table's stream.

The table's stream is the outbox: the write that changes a payout (or finishes a bank sync) is
the event's record, so ``POST /payouts`` makes no extra call and a function dying right after its
write loses nothing. :func:`events_of` turns one stream record into the events it means:

* a payout item inserted: ``payout.created``;
* a payout item whose ``status`` changed: ``payout.<new status>``;
* a bank connection whose last sync summary changed (a new ``finished_at``):
  ``bank_connection.synced`` with the summary.

Anything else (other items, other attribute changes, deletes) means nothing. The event id is a
digest of what the event is about (object, type, version or sync time), so the stream's
at-least-once delivery, a redelivered provider webhook (which cannot move the status twice) or a
retried function never makes a second event: the same change always has the same id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from payrail.bank.reading import connection_view
from payrail.db import deserialize
from payrail.db.bank import StoredConnection
from payrail.db.payouts import StoredPayout
from payrail.payouts.models import public_view

PAYOUT_EVENT_TYPES = ("payout.created", "payout.submitted", "payout.processing", "payout.paid", "payout.failed")
EVENT_TYPES = (*PAYOUT_EVENT_TYPES, "bank_connection.synced")

# The stream records that can mean an event, by key (the fan-out's FilterCriteria says the same
# to Lambda, so other items' records never invoke it; this is the same rule, for anything else).
PAYOUT_ITEM = ("PAYOUT#", "PAYOUT")
CONNECTION_ITEM = ("CONN#", "CONN")


@dataclass(frozen=True)
class MerchantEvent:
    id: str
    type: str
    user_id: str
    created_at: str
    object: dict[str, Any]

    def body(self) -> str:
        """The exact bytes every delivery of this event sends (and signs)."""
        document = {"id": self.id, "type": self.type, "created_at": self.created_at, "data": {"object": self.object}}
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def event_id(*parts: str | int) -> str:
    """``evt_`` and a digest of what the event is about: the same change, the same id."""
    return "evt_" + hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()[:32]


def payout_object(payout: StoredPayout) -> dict[str, Any]:
    """The payout as ``GET /payouts/{id}`` shows it, with its version so a receiver can drop a late event."""
    return {**public_view(payout).model_dump(mode="json"), "version": payout.version}


def _is(keys: Mapping[str, Any], item: tuple[str, str]) -> bool:
    pk = str(keys.get("pk", {}).get("S", ""))
    sk = str(keys.get("sk", {}).get("S", ""))
    return pk.startswith(item[0]) and sk == item[1]


def events_of(record: Mapping[str, Any]) -> list[MerchantEvent]:
    """The events one DynamoDB stream record (Lambda's shape) means; usually none or one."""
    change = record.get("dynamodb") or {}
    keys = change.get("Keys") or {}
    name = record.get("eventName")
    new = deserialize(change["NewImage"]) if change.get("NewImage") else None
    old = deserialize(change["OldImage"]) if change.get("OldImage") else None
    if new is None or name not in ("INSERT", "MODIFY"):
        return []
    if _is(keys, PAYOUT_ITEM):
        payout = StoredPayout.model_validate(new)
        if name == "INSERT":
            kind, when = "payout.created", payout.created_at
        elif old is not None and old.get("status") != new.get("status"):
            kind, when = f"payout.{payout.status.value}", payout.updated_at
        else:
            return []
        return [MerchantEvent(event_id(payout.id, kind, payout.version), kind, payout.user_id, when, payout_object(payout))]
    if _is(keys, CONNECTION_ITEM):
        summary = new.get("last_sync") or {}
        finished = summary.get("finished_at")
        if not finished or finished == ((old or {}).get("last_sync") or {}).get("finished_at"):
            return []
        connection = StoredConnection.model_validate(new)
        view = {**connection_view(connection).model_dump(mode="json"), "version": connection.sync_generation}
        kind = "bank_connection.synced"
        return [MerchantEvent(event_id(connection.connection_id, kind, finished), kind, connection.user_id, str(finished), view)]
    return []
