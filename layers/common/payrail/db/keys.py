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
| bank sync schedule | ``CONN#{connection_id}`` | ``SCHEDULE`` | ``BANKDUE#{shard}`` / next sync time |
| bank transaction | ``CONN#{connection_id}`` | ``TXN#{transaction_id}`` | ``USER#{user_id}#TXNS`` / ``{date}#{connection_id}#{id}`` |
| circuit breaker | ``CIRCUIT#{name}`` | ``CIRCUIT`` | |
| sandbox provider state | ``SANDBOX#{provider}#...`` | varies | varies |
| sandbox bank user / change log / current txn | ``SANDBOX#bank#USER#{login}`` | ``USER`` / ``LOG#{seq}`` / ``TXN#{id}`` | |
| sandbox bank code / token (hashed) | ``SANDBOX#bank#CODE#{sha256}`` / ``SANDBOX#bank#TOKEN#{sha256}`` | ``CODE`` / ``TOKEN`` | |
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

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


def outbox_payout_id(marker: Mapping[str, Any]) -> str:
    """The payout an ``outbox`` marker stands for: the end of its sort key."""
    return str(marker["sk"]).rsplit("#", 1)[-1]


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


# -------------------------------------------------------------------- bank sync
BANK_DUE_SHARDS = 4


def connection(connection_id: str) -> Key:
    return {"pk": f"CONN#{connection_id}", "sk": "CONN"}


def user_connections_index(user_id: str) -> str:
    return f"USER#{user_id}#CONNS"


def connection_schedule(connection_id: str) -> Key:
    """When a connection is next due for a scheduled sync; indexed on gsi1 by shard and time so the
    fan-out queries only what is due instead of scanning every connection."""
    return {"pk": f"CONN#{connection_id}", "sk": "SCHEDULE"}


def bank_due_shard(connection_id: str) -> str:
    shard = int(hashlib.sha256(connection_id.encode()).hexdigest(), 16) % BANK_DUE_SHARDS
    return f"BANKDUE#{shard}"


def bank_due_shards() -> list[str]:
    return [f"BANKDUE#{shard}" for shard in range(BANK_DUE_SHARDS)]


def bank_transaction(connection_id: str, transaction_id: str) -> Key:
    return {"pk": f"CONN#{connection_id}", "sk": f"TXN#{transaction_id}"}


def user_transactions_index(user_id: str) -> str:
    return f"USER#{user_id}#TXNS"


def sandbox_bank_user(login: str) -> Key:
    return {"pk": f"SANDBOX#bank#USER#{login}", "sk": "USER"}


def sandbox_bank_log(login: str, seq: int) -> Key:
    return {"pk": f"SANDBOX#bank#USER#{login}", "sk": f"LOG#{seq:012d}"}


def sandbox_bank_log_prefix(login: str) -> tuple[str, str]:
    return f"SANDBOX#bank#USER#{login}", "LOG#"


def sandbox_bank_txn(login: str, transaction_id: str) -> Key:
    return {"pk": f"SANDBOX#bank#USER#{login}", "sk": f"TXN#{transaction_id}"}


def sandbox_bank_code(code: str) -> Key:
    return {"pk": f"SANDBOX#bank#CODE#{hashlib.sha256(code.encode()).hexdigest()}", "sk": "CODE"}


def sandbox_bank_token(token: str) -> Key:
    """Tokens are stored by their hash only, so the table never holds a usable token."""
    return {"pk": f"SANDBOX#bank#TOKEN#{hashlib.sha256(token.encode()).hexdigest()}", "sk": "TOKEN"}
