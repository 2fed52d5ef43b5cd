"""Where the sandbox providers keep their state (dev stage and local only).

The sandbox is a stand-in for outside parties, so it keeps its own items under ``SANDBOX#``
partition keys, apart from every product item; the product's key layout (``payrail.db.keys``)
knows nothing of them.
"""

from __future__ import annotations

import hashlib

from payrail.db import Key, Table, table


def sandbox_table() -> Table:
    return table()


def key(provider: str, *parts: str) -> str:
    """A partition key of a sandbox provider's own state."""
    return "#".join(("SANDBOX", provider, *parts))


def digest(value: str) -> str:
    """Codes and tokens are stored by their SHA-256 only, so the table never holds a usable one."""
    return hashlib.sha256(value.encode()).hexdigest()


# -------------------------------------------------------------------- the sandbox bank
def bank_user(login: str) -> Key:
    return {"pk": key("bank", "USER", login), "sk": "USER"}


def bank_log(login: str, seq: int) -> Key:
    return {"pk": key("bank", "USER", login), "sk": f"LOG#{seq:012d}"}


def bank_txn(login: str, transaction_id: str) -> Key:
    return {"pk": key("bank", "USER", login), "sk": f"TXN#{transaction_id}"}


def bank_code(code: str) -> Key:
    return {"pk": key("bank", "CODE", digest(code)), "sk": "CODE"}


def bank_token(token: str) -> Key:
    return {"pk": key("bank", "TOKEN", digest(token)), "sk": "TOKEN"}
