"""Bank sync end to end on the running local stack: link through the sandbox bank's OAuth flow,
then sync through the API, SQS and the worker, and read the results back over HTTP."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from scenarios.bank import link, sync
from tests.e2e.signin import sign_in

pytestmark = pytest.mark.e2e


def _counts(summary: dict[str, Any]) -> tuple[int, int, int, int]:
    return summary["inserted"], summary["updated"], summary["unchanged"], summary["removed"]


def test_link_and_sync_a_sandbox_bank_then_follow_its_changes(stack: Any, api: httpx.Client) -> None:
    login = f"{uuid.uuid4().hex[:8]}@bank.example"
    auth = {"Authorization": f"Bearer {sign_in(api, login)}"}
    # Given a sandbox bank connection linked through the OAuth flow
    connection = link(api, auth, login)
    assert connection["status"] == "active"
    assert connection["last_sync"] is None
    # When it is synced: the 15 sandbox transactions arrive in 3 pages
    first = sync(api, auth, connection["id"])
    assert _counts(first) == (15, 0, 0, 0)
    assert first["pages"] == 3
    # When it is synced again: nothing is new and nothing is written
    second = sync(api, auth, connection["id"])
    assert _counts(second) == (0, 0, 0, 0)
    assert second["written"] == 0
    # When the bank adds 3 and modifies 2
    changed = api.put("/sandbox/bank/control/transactions", json={"user": login, "add": 3, "modify": 2})
    assert changed.status_code == 200
    third = sync(api, auth, connection["id"])
    assert _counts(third)[:2] == (3, 2)
    # When the bank removes 1
    assert api.put("/sandbox/bank/control/transactions", json={"user": login, "remove": 1}).status_code == 200
    fourth = sync(api, auth, connection["id"])
    assert _counts(fourth) == (0, 0, 0, 1)
    # Then the caller reads back exactly the bank's 17 transactions
    listed = api.get("/bank/transactions", params={"connection_id": connection["id"], "limit": 100}, headers=auth).json()
    assert len(listed["items"]) == 17
    # And no provider token is in the table or anywhere in the stack's logs
    dynamodb = stack.client("dynamodb")
    items = [i for page in dynamodb.get_paginator("scan").paginate(TableName=stack.physical("Table")) for i in page["Items"]]
    dump = json.dumps(items, default=str)
    log = stack.log()
    assert "bank sync finished" in log
    for secret_prefix in ("sandbox-access-", "sandbox-refresh-"):
        assert secret_prefix not in dump
        assert secret_prefix not in log
