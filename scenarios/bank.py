"""Linking a sandbox bank connection and syncing it, over HTTP."""

from __future__ import annotations

from typing import Any

import httpx

from scenarios.waiting import wait_for


def link(api: httpx.Client, auth: dict[str, str], login: str) -> dict[str, Any]:
    """GET /bank/connect → the sandbox bank signs in ``login`` → GET /bank/callback; the connection."""
    start = api.get("/bank/connect", params={"login_hint": login}, headers=auth)
    assert start.status_code == 302, start.text
    binding = next(c for c in start.headers.get_list("set-cookie") if c.startswith("__Secure-payrail_oauth=")).split(";")[0]
    at_bank = api.get(start.headers["location"])
    assert at_bank.status_code == 302, at_bank.text
    back = api.get(at_bank.headers["location"], headers={"Accept": "application/json", "Cookie": binding})
    assert back.status_code == 201, back.text
    return dict(back.json())


def last_sync(api: httpx.Client, auth: dict[str, str], connection_id: str) -> dict[str, Any] | None:
    items = api.get("/bank/connections", headers=auth).json()["items"]
    connection = next(item for item in items if item["id"] == connection_id)
    return connection["last_sync"]


def sync(api: httpx.Client, auth: dict[str, str], connection_id: str, timeout: float = 60) -> dict[str, Any]:
    """Ask for a sync and wait for its summary (a new finished_at) to appear on the connection."""
    before = last_sync(api, auth, connection_id)
    queued = api.post(f"/bank/connections/{connection_id}/sync", headers=auth)
    assert queued.status_code == 202, queued.text

    def finished() -> dict[str, Any] | None:
        current = last_sync(api, auth, connection_id)
        return current if current and current != before and current["status"] == "succeeded" else None

    return wait_for(finished, timeout=timeout, interval=0.2)
