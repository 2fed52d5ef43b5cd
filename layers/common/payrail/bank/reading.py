"""What the caller reads: their connections with the last sync summary, and their transactions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from payrail.auth.tokens import Principal
from payrail.db import bank as store
from payrail.db.bank import StoredConnection
from payrail.ownership import owned


class SyncSummary(BaseModel):
    inserted: int
    updated: int
    unchanged: int
    removed: int
    pages: int
    written: int = 0
    finished_at: str
    status: str


class Account(BaseModel):
    account_id: str
    name: str
    type: str
    currency: str


class Connection(BaseModel):
    id: str
    institution: str
    status: Literal["active", "reauth_required"]
    created_at: str
    accounts: list[Account] = []
    last_sync: SyncSummary | None = None


class ConnectionList(BaseModel):
    items: list[Connection]
    next_cursor: str | None


class Transaction(BaseModel):
    id: str
    connection_id: str
    account_id: str
    amount: int
    currency: str
    date: str
    description: str
    pending: bool


class TransactionList(BaseModel):
    items: list[Transaction]
    next_cursor: str | None


def connection_view(connection: StoredConnection) -> Connection:
    return Connection(
        id=connection.connection_id,
        institution=connection.institution,
        status=connection.status,
        created_at=connection.created_at,
        accounts=[Account(**account) for account in connection.accounts],
        last_sync=SyncSummary(**connection.last_sync) if connection.last_sync else None,
    )


def list_connections(principal: Principal, limit: int, cursor: str | None) -> ConnectionList:
    items, next_cursor = store.list_connections(principal.user_id, limit, cursor)
    return ConnectionList(items=[connection_view(item) for item in items], next_cursor=next_cursor)


def list_transactions(principal: Principal, connection_id: str | None, limit: int, cursor: str | None) -> TransactionList:
    if connection_id is not None:
        owned(store.get_connection(connection_id), principal.user_id, "No such bank connection.")
    items, next_cursor = store.list_transactions(principal.user_id, connection_id, limit, cursor)
    return TransactionList(
        items=[
            Transaction(
                id=item.transaction_id,
                connection_id=item.connection_id,
                account_id=item.account_id or "",
                amount=item.amount,
                currency=item.currency or "",
                date=item.date or "",
                description=item.description or "",
                pending=item.pending,
            )
            for item in items
        ],
        next_cursor=next_cursor,
    )
