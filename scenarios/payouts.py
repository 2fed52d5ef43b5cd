"""Funding a user, creating payouts and following them, over HTTP; and what the sandbox provider received."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

FINAL = frozenset({"paid", "failed"})
BENEFICIARY = {"name": "Thandi Nkosi", "account_number": "62012345678", "bank_code": "250655"}


def body(amount: int, reference: str) -> dict[str, Any]:
    return {"amount": amount, "currency": "ZAR", "beneficiary": dict(BENEFICIARY), "reference": reference}


# What a scenario's user is funded with before its payouts (a million rand) unless it says otherwise.
FUNDING = 100_000_000


def balances(api: httpx.Client, auth: dict[str, str]) -> dict[str, Any]:
    response = api.get("/balances", headers=auth)
    response.raise_for_status()
    return dict(response.json())


def ledger(api: httpx.Client, auth: dict[str, str], currency: str) -> list[dict[str, Any]]:
    """Every ledger entry of the user in ``currency``, newest first."""
    return _pages(api, f"/balances/{currency}/ledger", auth, 100)


def fund(api: httpx.Client, auth: dict[str, str], amounts: dict[str, int] | None = None, timeout: float = 60.0) -> list[str]:
    """Fund the signed-in user as money arrives: for each currency of ``amounts`` (by default
    FUNDING rand), the sandbox provider is told it received that amount with the user's funding
    reference and sends its signed ``funding.received`` webhook after its usual delay; this waits
    until the ledger shows every credit. Returns the event ids. (The provider's webhooks must be on.)"""
    reference = balances(api, auth)["funding_reference"]
    waiting: dict[str, str] = {}
    for currency, amount in (amounts or {"ZAR": FUNDING}).items():
        response = api.post("/sandbox/payments/v1/funding", json={"funding_reference": reference, "amount": amount, "currency": currency})
        response.raise_for_status()
        waiting[str(response.json()["id"])] = currency
    credited: list[str] = []
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for event_id, currency in list(waiting.items()):
            page = api.get(f"/balances/{currency}/ledger", params={"limit": 100}, headers=auth)
            page.raise_for_status()
            if any(entry["event_id"] == event_id for entry in page.json()["items"]):
                credited.append(waiting.pop(event_id) and event_id)
        if waiting:
            time.sleep(0.25)
    if waiting:
        raise TimeoutError(f"the fundings {sorted(waiting)} were not credited within {timeout:.0f} s")
    return credited


def create(api: httpx.Client, auth: dict[str, str], payload: dict[str, Any], key: str | None = None) -> httpx.Response:
    return api.post("/payouts", json=payload, headers={**auth, "Idempotency-Key": key or str(uuid.uuid4())})


def _pages(api: httpx.Client, path: str, headers: dict[str, str], limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        response = api.get(path, params={"limit": limit, **({"cursor": cursor} if cursor else {})}, headers=headers)
        response.raise_for_status()
        page = response.json()
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def listing(api: httpx.Client, auth: dict[str, str]) -> list[dict[str, Any]]:
    """Every payout of the signed-in user, newest first."""
    return _pages(api, "/payouts", auth, 100)


def statuses(api: httpx.Client, auth: dict[str, str]) -> dict[str, str]:
    """Every payout of the signed-in user: id → status."""
    return {item["id"]: item["status"] for item in listing(api, auth)}


def provider_received(api: httpx.Client) -> list[dict[str, Any]]:
    """Every payout the sandbox provider received, with its idempotency key."""
    return _pages(api, "/sandbox/payments/v1/payouts", {}, 1000)


def provider_duplicates(received: list[dict[str, Any]]) -> int:
    """Payouts the provider received more than once for one idempotency key (must be 0)."""
    return sum(count - 1 for count in Counter(item["idempotency_key"] for item in received).values() if count > 1)


def watch(
    read: Callable[[], dict[str, str]],
    ids: set[str],
    timeout: float,
    progress: Callable[[Counter[str]], None] | None = None,
    interval: float = 0.5,
) -> dict[str, str]:
    """Poll every ``interval`` seconds until every payout in ``ids`` is final (or the time is up); the last statuses seen."""
    deadline = time.monotonic() + timeout
    current: dict[str, str] = {}
    while time.monotonic() < deadline:
        current = {payout_id: status for payout_id, status in read().items() if payout_id in ids}
        if progress:
            progress(Counter(current.values()))
        if len(current) == len(ids) and set(current.values()) <= FINAL:
            break
        time.sleep(interval)
    return current
