"""The key layout of every item in the one table: every key is built here, and only the
``payrail.db`` package uses it. (The dev-only sandbox keeps its own items under ``SANDBOX#``
keys, laid out in ``payrail_sandbox.store``.) A prefix is what a function's IAM role is limited to
(``dynamodb:LeadingKeys`` in template.yaml), which is why a connection's tokens and its schedule
are items of their own: only the sync worker reads tokens, and the schedule's claims cannot write
to the connection.

| item | pk | sk | gsi1pk / gsi1sk |
| --- | --- | --- | --- |
| user | ``USER#{user_id}`` | ``PROFILE`` | |
| OAuth state | ``OAUTHSTATE#{sha256(state)}`` | ``STATE`` | |
| session (refresh family) | ``SESSION#{session_id}`` | ``SESSION`` | |
| refresh token | ``REFRESH#{sha256}`` | ``REFRESH`` | |
| idempotency record | ``IDEM#{user_id}#{key_hash}`` | ``IDEM`` | |
| payout | ``PAYOUT#{payout_id}`` | ``PAYOUT`` | ``USER#{user_id}#PAYOUTS`` / ``{created_at}#{payout_id}`` |
| unfinished-payout marker | ``OUTBOX#{shard}`` | ``{created_at}#{payout_id}`` | |
| webhook event | ``EVENT#{event_id}`` | ``EVENT`` | |
| rate-limit window | ``RATE#{scope}#{subject}#{window}`` | ``RATE`` | |
| bank connection | ``CONN#{connection_id}`` | ``CONN`` | ``USER#{user_id}#CONNS`` / created |
| its sealed provider tokens | ``CONNTOKENS#{connection_id}`` | ``TOKENS`` | |
| bank sync schedule | ``BANKSCHEDULE#{connection_id}`` | ``SCHEDULE`` | ``BANKDUE#{shard}`` / next sync time |
| bank transaction | ``CONN#{connection_id}`` | ``TXN#{transaction_id}`` | ``USER#{user_id}#TXNS`` / ``{date}#{connection_id}#{id}`` |
| circuit breaker | ``CIRCUIT#{name}`` | ``CIRCUIT`` | |
| balance | ``BALANCE#{user_id}`` | ``{currency}`` | ``BALANCECHANGED#{shard}`` / ``{updated_at}#{user_id}#{currency}`` |
| ledger entry | ``LEDGER#{user_id}#{currency}`` | ``ENTRY#{entry_id}`` | ``USER#{user_id}#LEDGER#{currency}`` / ``{created_at}#{id}`` |
| funding reference | ``FUNDREF#{reference}`` | ``FUNDREF`` | |
| ledger audit's progress | ``LEDGERAUDIT`` | ``STATE`` | |
| merchant webhook endpoint | ``WHEP#{endpoint_id}`` | ``ENDPOINT`` | ``USER#{user_id}#WHEPS`` / ``{created_at}#{endpoint_id}`` |
| its signing secrets, KMS-encrypted | ``WHSECRET#{endpoint_id}`` | ``SECRET`` | |
| merchant event (what redeliver sends again) | ``WHEVT#{event_id}`` | ``EVENT`` | |
| delivery task of one (event, endpoint) pair | ``WHTASK#{endpoint_id}#{event_id}`` | ``TASK`` | |
| delivery attempt | ``WHDLV#{endpoint_id}`` | ``{created_at}#{attempt_id}`` | |
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
    return {"pk": outbox_shard(shard), "sk": f"{created_at}#{payout_id}"}


def outbox_shard(shard: int) -> str:
    return f"OUTBOX#{shard}"


def idempotency(user_id: str, key: str) -> Key:
    """The idempotency record of ``key`` for ``user_id``; the key is hashed so any printable
    key makes a short, safe partition key and the raw key never sits in the table."""
    return {"pk": f"IDEM#{user_id}#{hashlib.sha256(key.encode()).hexdigest()}", "sk": "IDEM"}


def user(user_id: str) -> Key:
    return {"pk": f"USER#{user_id}", "sk": "PROFILE"}


def webhook_event(event_id: str) -> Key:
    return {"pk": f"EVENT#{event_id}", "sk": "EVENT"}


def rate_window(scope: str, subject: str, window: int) -> Key:
    return {"pk": f"RATE#{scope}#{subject}#{window}", "sk": "RATE"}


def circuit(name: str) -> Key:
    return {"pk": f"CIRCUIT#{name}", "sk": "CIRCUIT"}


# -------------------------------------------------------------------- bank sync
BANK_DUE_SHARDS = 4


def connection(connection_id: str) -> Key:
    return {"pk": f"CONN#{connection_id}", "sk": "CONN"}


def user_connections_index(user_id: str) -> str:
    return f"USER#{user_id}#CONNS"


def connection_tokens(connection_id: str) -> Key:
    """The connection's provider tokens, sealed; apart from the connection so that the functions
    that list and show connections cannot read them."""
    return {"pk": f"CONNTOKENS#{connection_id}", "sk": "TOKENS"}


def connection_schedule(connection_id: str) -> Key:
    """When a connection is next due for a scheduled sync; indexed on gsi1 by shard and time so the
    fan-out queries only what is due instead of scanning every connection."""
    return {"pk": f"BANKSCHEDULE#{connection_id}", "sk": "SCHEDULE"}


def bank_due_shard(connection_id: str) -> str:
    shard = int(hashlib.sha256(connection_id.encode()).hexdigest(), 16) % BANK_DUE_SHARDS
    return f"BANKDUE#{shard}"


def bank_due_shards() -> list[str]:
    return [f"BANKDUE#{shard}" for shard in range(BANK_DUE_SHARDS)]


def bank_transaction(connection_id: str, transaction_id: str) -> Key:
    return {"pk": f"CONN#{connection_id}", "sk": f"TXN#{transaction_id}"}


def user_transactions_index(user_id: str) -> str:
    return f"USER#{user_id}#TXNS"


# -------------------------------------------------------------------- sign-in
def oauth_state(state_digest: str) -> Key:
    return {"pk": f"OAUTHSTATE#{state_digest}", "sk": "STATE"}


def session(session_id: str) -> Key:
    return {"pk": f"SESSION#{session_id}", "sk": "SESSION"}


def refresh_token(token: str) -> Key:
    """Refresh tokens are stored by their SHA-256 only, so the table never holds a usable token."""
    return {"pk": "REFRESH#" + hashlib.sha256(token.encode()).hexdigest(), "sk": "REFRESH"}


# -------------------------------------------------------------------- balances and the ledger
BALANCE_CHANGED_SHARDS = 4


def balance(user_id: str, currency: str) -> Key:
    """A user's balance in one currency; every balance of a user shares the partition, so
    ``GET /balances`` is one query."""
    return {"pk": balance_partition(user_id), "sk": currency}


def balance_partition(user_id: str) -> str:
    return f"BALANCE#{user_id}"


def balance_changed_shard(user_id: str) -> str:
    """Where a balance is indexed on gsi1 by the time it last changed: every write to the balance
    sets it (no extra call), so the ledger audit queries only the balances changed since its last run."""
    shard = int(hashlib.sha256(user_id.encode()).hexdigest(), 16) % BALANCE_CHANGED_SHARDS
    return f"BALANCECHANGED#{shard}"


def balance_changed_shards() -> list[str]:
    return [f"BALANCECHANGED#{shard}" for shard in range(BALANCE_CHANGED_SHARDS)]


def ledger_partition(user_id: str, currency: str) -> str:
    return f"LEDGER#{user_id}#{currency}"


def ledger_entry(user_id: str, currency: str, entry_id: str) -> Key:
    """A ledger entry; its id is derived from what it records (the payout and the movement, or the
    funding event), so a retried write meets its own earlier entry and cannot append twice."""
    return {"pk": ledger_partition(user_id, currency), "sk": f"ENTRY#{entry_id}"}


def user_ledger_index(user_id: str, currency: str) -> str:
    return f"USER#{user_id}#LEDGER#{currency}"


def funding_reference(reference: str) -> Key:
    return {"pk": f"FUNDREF#{reference}", "sk": "FUNDREF"}


def ledger_audit_state() -> Key:
    return {"pk": "LEDGERAUDIT", "sk": "STATE"}


# -------------------------------------------------------------------- merchant webhooks
def webhook_endpoint(endpoint_id: str) -> Key:
    return {"pk": f"WHEP#{endpoint_id}", "sk": "ENDPOINT"}


def user_webhook_endpoints_index(user_id: str) -> str:
    return f"USER#{user_id}#WHEPS"


def webhook_secret(endpoint_id: str) -> Key:
    """An endpoint's signing secrets, apart from the endpoint so that only the functions that
    create, rotate and sign can touch them."""
    return {"pk": f"WHSECRET#{endpoint_id}", "sk": "SECRET"}


def merchant_event(event_id: str) -> Key:
    return {"pk": f"WHEVT#{event_id}", "sk": "EVENT"}


def delivery_task(endpoint_id: str, event_id: str) -> Key:
    return {"pk": f"WHTASK#{endpoint_id}#{event_id}", "sk": "TASK"}


def delivery_attempts(endpoint_id: str) -> str:
    return f"WHDLV#{endpoint_id}"


def delivery_attempt(endpoint_id: str, created_at: str, attempt_id: str) -> Key:
    return {"pk": delivery_attempts(endpoint_id), "sk": f"{created_at}#{attempt_id}"}
