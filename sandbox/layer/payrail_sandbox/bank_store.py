"""The sandbox bank's state in the table (dev stage and local only).

A user's transactions are a change log (``LOG#{seq}``, one entry per add, modify or remove, in
order) plus the current state of each transaction (``TXN#{id}``); a ``transactions/sync``
cursor is the sequence number of the last log entry the client has seen. Codes and tokens are
stored under the SHA-256 of their value only.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from payrail.db import ConditionFailed, Item

from payrail_sandbox.store import bank_code, bank_log, bank_token, bank_txn, bank_user
from payrail_sandbox.store import sandbox_table as table

LOG_END = 10**12 - 1


def ensure_user(login: str, seed: int) -> bool:
    """Create the sandbox user with ``seed`` transactions if it does not exist; True if created now."""
    try:
        table().put(
            {
                **bank_user(login),
                "login": login,
                "seq": 0,
                "token_generation": 0,
                "sync_requests": 0,
                "token_grants": {"authorization_code": 0, "refresh_token": 0},
                "account_id": "acc_" + secrets.token_hex(6),
            },
            condition="attribute_not_exists(pk)",
        )
    except ConditionFailed:
        return False
    if seed:
        add_transactions(login, seed)
    return True


def get_user(login: str) -> Item | None:
    return table().get(bank_user(login))


def _allocate(login: str, count: int) -> int:
    """Reserve ``count`` log sequence numbers; returns the first."""
    answer = table().update(bank_user(login), "ADD seq :n", condition="attribute_exists(pk)", values={":n": count}, returns="UPDATED_NEW")
    assert answer is not None
    return int(answer["seq"]) - count + 1


def _log(login: str, seq: int, kind: str, transaction: Mapping[str, Any]) -> Item:
    return {**bank_log(login, seq), "kind": kind, "transaction": dict(transaction)}


def add_transactions(login: str, count: int) -> list[str]:
    user = get_user(login)
    if user is None or count <= 0:
        return []
    first = _allocate(login, count)
    today = int(time.time()) // 86400
    transactions = []
    for offset in range(count):
        seq = first + offset
        day = time.strftime("%Y-%m-%d", time.gmtime((today - (seq % 365)) * 86400))
        transactions.append(
            {
                "transaction_id": "txn_" + secrets.token_hex(8),
                "account_id": user["account_id"],
                "amount": -(100 + secrets.randbelow(99_900)),
                "currency": "ZAR",
                "date": day,
                "description": f"Sandbox purchase {seq}",
                "pending": False,
            }
        )
    puts = [{**bank_txn(login, t["transaction_id"]), "transaction": t} for t in transactions]
    puts += [_log(login, first + i, "added", t) for i, t in enumerate(transactions)]
    table().batch_write(puts=puts)
    return [t["transaction_id"] for t in transactions]


def _current(login: str, count: int) -> list[dict[str, Any]]:
    if count <= 0:
        return []
    pk = bank_user(login)["pk"]
    page = table().query("pk = :pk AND begins_with(sk, :txn)", {":pk": pk, ":txn": "TXN#"}, limit=count, consistent=True)
    return [dict(item["transaction"]) for item in page.items]


def modify_transactions(login: str, count: int) -> list[str]:
    chosen = _current(login, count)
    if not chosen:
        return []
    first = _allocate(login, len(chosen))
    puts: list[Item] = []
    for i, transaction in enumerate(chosen):
        transaction["amount"] = int(transaction["amount"]) - 1
        transaction["description"] = str(transaction["description"]) + " (amended)"
        puts.append({**bank_txn(login, transaction["transaction_id"]), "transaction": transaction})
        puts.append(_log(login, first + i, "modified", transaction))
    table().batch_write(puts=puts)
    return [t["transaction_id"] for t in chosen]


def remove_transactions(login: str, count: int) -> list[str]:
    chosen = _current(login, count)
    if not chosen:
        return []
    first = _allocate(login, len(chosen))
    logs = [_log(login, first + i, "removed", {"transaction_id": t["transaction_id"]}) for i, t in enumerate(chosen)]
    table().batch_write(puts=logs, deletes=[bank_txn(login, t["transaction_id"]) for t in chosen])
    return [t["transaction_id"] for t in chosen]


def count_transactions(login: str) -> int:
    pk = bank_user(login)["pk"]
    total, start = 0, None
    while True:
        page = table().query("pk = :pk AND begins_with(sk, :txn)", {":pk": pk, ":txn": "TXN#"}, start_key=start)
        total += len(page.items)
        start = page.last_key
        if not start:
            return total


def log_after(login: str, seq: int, count: int) -> tuple[list[Item], bool]:
    """Up to ``count`` log entries after ``seq``, and whether more follow."""
    pk = bank_user(login)["pk"]
    page = table().query(
        "pk = :pk AND sk BETWEEN :from AND :to",
        {":pk": pk, ":from": bank_log(login, seq + 1)["sk"], ":to": bank_log(login, LOG_END)["sk"]},
        limit=count + 1,
        consistent=True,
    )
    return page.items[:count], len(page.items) > count


# -------------------------------------------------------------------- codes and tokens
def save_code(code: str, record: Mapping[str, Any], ttl: int) -> None:
    table().put({**bank_code(code), **record, "expires_at": int(time.time()) + ttl})


def consume_code(code: str) -> Item | None:
    """The code's record, deleted in the same call so a code works once; None if unknown or used."""
    try:
        return table().delete(bank_code(code), condition="attribute_exists(pk)")
    except ConditionFailed:
        return None


def save_token(token: str, record: Mapping[str, Any], ttl: int) -> None:
    table().put({**bank_token(token), **record, "expires_at": int(time.time()) + ttl})


def get_token(token: str) -> Item | None:
    return table().get(bank_token(token))


def consume_token(token: str, kind: str) -> Item | None:
    try:
        return table().delete(bank_token(token), condition="attribute_exists(pk) AND kind = :kind", values={":kind": kind})
    except ConditionFailed:
        return None


# -------------------------------------------------------------------- control and counters
def count_token_grant(login: str, grant: str) -> None:
    table().update(bank_user(login), "ADD token_grants.#grant :one", names={"#grant": grant}, values={":one": 1}, returns="NONE")


def expire_tokens(login: str) -> None:
    table().update(bank_user(login), "ADD token_generation :one", condition="attribute_exists(pk)", values={":one": 1})


def set_fault(login: str, fault: Mapping[str, Any] | None) -> None:
    if fault is None:
        table().update(bank_user(login), "REMOVE fault", condition="attribute_exists(pk)")
    else:
        table().update(bank_user(login), "SET fault = :f", condition="attribute_exists(pk)", values={":f": dict(fault)})


def count_sync_request(login: str) -> Item:
    """Count one transactions/sync request and return the user (with its fault, if any)."""
    answer = table().update(bank_user(login), "ADD sync_requests :one", condition="attribute_exists(pk)", values={":one": 1})
    assert answer is not None
    return answer


def step_fault(login: str, fault: Mapping[str, Any]) -> bool:
    """Advance the fault by one request; True when this request must fail. The condition on the
    values read keeps concurrent requests from consuming the same step twice."""
    after, remaining = int(fault.get("after", 0)), int(fault.get("remaining", 0))
    if after > 0:
        update, condition, values = "SET fault.#after = :next", "fault.#after = :seen", {":next": after - 1, ":seen": after}
        names = {"#after": "after"}
        fails = False
    elif remaining > 0:
        update, condition, values = "SET fault.remaining = :next", "fault.remaining = :seen", {":next": remaining - 1, ":seen": remaining}
        names = {}
        fails = True
    else:
        return False
    try:
        table().update(bank_user(login), update, condition=condition, names=names or None, values=values, returns="NONE")
    except ConditionFailed:
        return False
    return fails
