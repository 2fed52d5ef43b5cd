"""The key layout of every item in the one table. Only the ``payrail.db`` package uses it.

| item | pk | sk | gsi1pk / gsi1sk |
| --- | --- | --- | --- |
| user | ``USER#{user_id}`` | ``PROFILE`` | ``EMAIL#{email}`` / ``USER`` |
| OAuth state | ``OAUTHSTATE#{state}`` | ``STATE`` | |
| session (refresh family) | ``SESSION#{session_id}`` | ``SESSION`` | ``USER#{user_id}#SESSIONS`` / created |
| refresh token | ``REFRESH#{sha256}`` | ``REFRESH`` | |
| idempotency record | ``IDEM#{user_id}#{key_hash}`` | ``IDEM`` | |
| payout | ``PAYOUT#{payout_id}`` | ``PAYOUT`` | ``USER#{user_id}#PAYOUTS`` / ``{created_at}#{payout_id}`` |
| unfinished-payout marker | ``OUTBOX#{shard}`` | ``{created_at}#{payout_id}`` | |
| webhook event | ``EVENT#{event_id}`` | ``EVENT`` | |
| rate-limit window | ``RATE#{scope}#{subject}#{window}`` | ``RATE`` | |
| bank connection | ``CONN#{connection_id}`` | ``CONN`` | ``USER#{user_id}#CONNS`` / created |
| bank transaction | ``CONN#{connection_id}`` | ``TXN#{transaction_id}`` | ``USER#{user_id}#TXNS`` / ``{date}#{id}`` |
| circuit breaker | ``CIRCUIT#{name}`` | ``CIRCUIT`` | |
| sandbox provider state | ``SANDBOX#{provider}#...`` | varies | varies |
"""

from __future__ import annotations

import hashlib

from payrail.db import Key


def payout(payout_id: str) -> Key:
    return {"pk": f"PAYOUT#{payout_id}", "sk": "PAYOUT"}


def user_payouts_index(user_id: str) -> str:
    return f"USER#{user_id}#PAYOUTS"


OUTBOX_SHARDS = 8


def outbox(payout_id: str, created_at: str) -> Key:
    """The marker of a payout that is not final yet. It is written in the create transaction
    (no extra call on the hot path) and deleted in the transaction that makes the payout
    ``paid`` or ``failed``; the scheduled reconciliation queries the shards for old markers to
    re-enqueue payouts still ``pending`` and to ask the provider about stuck ones."""
    shard = int(hashlib.sha256(payout_id.encode()).hexdigest(), 16) % OUTBOX_SHARDS
    return {"pk": f"OUTBOX#{shard}", "sk": f"{created_at}#{payout_id}"}


def outbox_shards() -> list[str]:
    return [f"OUTBOX#{shard}" for shard in range(OUTBOX_SHARDS)]


def user(user_id: str) -> Key:
    return {"pk": f"USER#{user_id}", "sk": "PROFILE"}


def webhook_event(event_id: str) -> Key:
    return {"pk": f"EVENT#{event_id}", "sk": "EVENT"}


def rate_window(scope: str, subject: str, window: int) -> Key:
    return {"pk": f"RATE#{scope}#{subject}#{window}", "sk": "RATE"}


def circuit(name: str) -> Key:
    return {"pk": f"CIRCUIT#{name}", "sk": "CIRCUIT"}


def sandbox(provider: str, *parts: str) -> str:
    """A partition key of a sandbox provider's own state."""
    return "#".join(("SANDBOX", provider, *parts))
