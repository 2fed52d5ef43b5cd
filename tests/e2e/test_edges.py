"""Issue 19's attacks on the edges of the running local stack, over HTTP: spamming a bank sync,
crafted cursors and deeply nested bodies, missing security headers, and health as an amplifier."""

from __future__ import annotations

import base64
import json
import math
import re
import time
import uuid
from typing import Any

import httpx
import pytest

from scenarios import payouts
from scenarios.bank import last_sync, link, sync
from tests.e2e.conftest import RunningStack
from tests.e2e.signin import sign_in
from tests.payouts_support import VALID_BODY as PAYOUT
from tests.support import wait_for

pytestmark = pytest.mark.e2e

HSTS = "max-age=63072000; includeSubDomains"


def _signed_in(api: httpx.Client, domain: str) -> tuple[str, dict[str, str]]:
    """A fresh user signed in through the sandbox identity provider: (user id, Bearer header)."""
    login = f"{uuid.uuid4().hex[:8]}@{domain}"
    auth = {"Authorization": f"Bearer {sign_in(api, login)}"}
    return login, auth


def _cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _queue_counts(stack: RunningStack, logical_id: str) -> int:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.physical(logical_id),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def _is_problem(response: httpx.Response, status: int) -> bool:
    return response.status_code == status and response.headers["content-type"] == "application/problem+json"


# ------------------------------------------------------------------------------ 1. sync spam
def test_thirty_sync_requests_join_one_sync_are_limited_and_leave_nothing_for_the_dlq(stack: RunningStack, api: httpx.Client) -> None:
    # Given a linked sandbox connection whose bank makes the first sync wait 3 s (a 429 with
    # Retry-After: 3), so that sync is still running while the requests arrive
    login, auth = _signed_in(api, "spam.example")
    connection = link(api, auth, login)
    dlq_before = _queue_counts(stack, "BankSyncDLQ")
    fault = {"user": login, "kind": "rate_limited", "count": 1, "retry_after": 3}
    assert api.put("/sandbox/bank/control/faults", json=fault).status_code == 200
    calls_before = api.get("/sandbox/bank/control/stats", params={"user": login}).json()["sync_requests"]
    # (the limit counts per minute: start well inside one)
    if time.time() % 60 > 54:
        time.sleep(60.5 - time.time() % 60)

    # When the user sends 30 sync requests for it, one after another
    answers = [api.post(f"/bank/connections/{connection['id']}/sync", headers=auth) for _ in range(30)]

    # Then the first 10 (the per-user limit) are 202 and joined into one sync with one id ...
    accepted = [answer for answer in answers if answer.status_code == 202]
    limited = [answer for answer in answers if answer.status_code == 429]
    assert len(accepted) == 10, [answer.status_code for answer in answers]
    assert answers[:10] == accepted
    assert len({answer.json()["sync_id"] for answer in accepted}) == 1
    assert [answer.json()["joined"] for answer in accepted] == [False] + [True] * 9
    # ... and the other 20 are 429 rate-limited problems with Retry-After
    assert len(limited) == 20
    assert all(_is_problem(answer, 429) and answer.headers["retry-after"].isdigit() for answer in limited)
    assert {answer.json()["type"] for answer in limited} == {"urn:payrail:problem:rate-limited"}

    # When the queue has drained
    wait_for(lambda: _queue_counts(stack, "BankSyncQueue") == 0 or None, timeout=60, interval=0.5)
    # Then the bank saw one sync (its 429, then the 15 transactions in 3 pages), at most one call
    # more, and nothing reached the dead-letter queue
    calls = api.get("/sandbox/bank/control/stats", params={"user": login}).json()["sync_requests"] - calls_before
    assert calls <= 1 + 3 + 1, calls
    finished = wait_for(lambda: last_sync(api, auth, connection["id"]), timeout=30, interval=0.5)
    assert (finished["status"], finished["inserted"]) == ("succeeded", 15)
    assert _queue_counts(stack, "BankSyncDLQ") == dlq_before


# ------------------------------------------------------------------------------ 4. crafted input
@pytest.mark.parametrize(("path", "index"), [("/payouts", "PAYOUTS"), ("/bank/transactions", "TXNS")])
def test_a_cursor_holding_only_the_callers_partition_is_a_400(api: httpx.Client, path: str, index: str) -> None:
    # Given a signed-in user with something to list, and a cursor that names only their own index partition
    login, auth = _signed_in(api, "cursor.example")
    user_id = api.get("/auth/me", headers=auth).json()["sub"]
    if path == "/payouts":
        payouts.fund(api, auth)
        created = api.post("/payouts", json=PAYOUT, headers={**auth, "Idempotency-Key": uuid.uuid4().hex})
        assert created.status_code == 201, created.text
    else:
        sync(api, auth, link(api, auth, login)["id"])
    crafted = _cursor({"gsi1pk": f"USER#{user_id}#{index}"})
    # When it is used to list, and so is a cursor with an extra or an empty key attribute
    answers = [
        api.get(path, params={"cursor": cursor}, headers=auth)
        for cursor in (
            crafted,
            _cursor({"gsi1pk": f"USER#{user_id}#{index}", "gsi1sk": "x", "pk": "x", "sk": "x", "extra": "x"}),
            _cursor({"gsi1pk": f"USER#{user_id}#{index}", "gsi1sk": "", "pk": "x", "sk": "x"}),
        )
    ]
    # Then each is a 400 problem naming the cursor, not a 500
    for answer in answers:
        assert _is_problem(answer, 400), answer.text
        assert [error["field"] for error in answer.json()["errors"]] == ["cursor"]


@pytest.mark.parametrize("path", ["/auth/refresh", "/payouts"])
def test_a_body_nested_3000_arrays_deep_is_a_400(api: httpx.Client, path: str) -> None:
    # Given a signed-in user (POST /payouts needs one; the refresh needs none)
    _, auth = _signed_in(api, "deep.example")
    headers = {**auth, "Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
    for depth in (3000, 33):
        # When the body nests arrays that deep
        answer = api.post(path, content="[" * depth + "]" * depth, headers=headers)
        # Then it is refused as a 400 problem about the body
        assert _is_problem(answer, 400), (depth, answer.status_code, answer.text)
        assert answer.json()["errors"][0]["type"] == "json_depth"


# ------------------------------------------------------------------------------ 6. headers
# The only routes whose successful answers may be cached: public files and documents that hold
# no user data (the console's page, revalidated on every load; the sandbox identity provider's
# discovery document and public keys, which a real provider serves cacheable too).
PUBLIC_STATIC = {
    "/": "no-cache",
    "/sandbox/idp/.well-known/openid-configuration": "public, max-age=3600",
    "/sandbox/idp/jwks": "public, max-age=300",
}


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def _check_headers(response: httpx.Response, cacheable: str | None = None) -> list[str]:
    """What is missing from ``response``; ``cacheable``: the Cache-Control a public static answer may have instead of no-store."""
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    missing = []
    if response.headers.get("strict-transport-security") != HSTS:
        missing.append(f"{where}: HSTS {response.headers.get('strict-transport-security')!r}")
    if response.headers.get("x-content-type-options") != "nosniff":
        missing.append(f"{where}: nosniff {response.headers.get('x-content-type-options')!r}")
    if response.headers.get_list("cache-control") != [cacheable or "no-store"]:
        missing.append(f"{where}: Cache-Control {response.headers.get_list('cache-control')!r}")
    return missing


def test_every_documented_route_and_the_console_answer_with_the_security_headers(api: httpx.Client) -> None:
    # Given a signed-in user and every operation the OpenAPI document lists
    _, auth = _signed_in(api, "headers.example")
    document = api.get("/openapi.json")
    operations = [(method.upper(), path, op) for path, item in document.json()["paths"].items() for method, op in item.items()]
    assert len(operations) > 20
    missing = _check_headers(document, cacheable="public, max-age=300")
    missing += _check_headers(api.get("/docs"), cacheable="public, max-age=300")
    statuses: set[int] = set()
    for method, path, operation in operations:
        # The sandbox's own writes (key rotation, fault switches) would change the shared stack: those are
        # sent with a body that is not JSON, which every route refuses before doing anything.
        harmless = {"content": b"{", "headers": {"Content-Type": "application/json"}} if method != "GET" else {}
        if path.startswith("/sandbox/") and method != "GET" and "requestBody" not in operation:
            continue  # a body-less sandbox write (POST /sandbox/idp/keys/rotate ...) cannot be made harmless
        attempts = [api.request(method, _concrete(path), **harmless)]
        if operation.get("security"):
            headers = {**auth, **harmless.get("headers", {})}
            attempts.append(api.request(method, _concrete(path), content=harmless.get("content"), headers=headers))
        for response in attempts:
            statuses.add(response.status_code)
            missing += _check_headers(response, PUBLIC_STATIC.get(path) if response.status_code == 200 else None)
    # And the console's page, its current assets (200 and 304), an unknown asset and an unknown route
    page = api.get("/")
    missing += _check_headers(page, cacheable="no-cache")
    assets = re.findall(r'(?:src|href)="(/assets/[0-9a-f]{12}/[^"]+)"', page.text)
    assert assets
    for asset in assets:
        first = api.get(asset)
        again = api.get(asset, headers={"If-None-Match": first.headers["etag"]})
        assert (first.status_code, again.status_code) == (200, 304)
        missing += _check_headers(first, cacheable="public, max-age=31536000, immutable")
        missing += _check_headers(again, cacheable="public, max-age=31536000, immutable")
    missing += _check_headers(api.get(assets[0].rsplit("/", 1)[0] + "/nothing.js"))
    missing += _check_headers(api.get("/no/such/route"))
    missing += _check_headers(api.get("/health"))
    # Then every answer carried HSTS and nosniff, and no-store unless it is a public static file
    assert missing == []
    assert {200, 400, 401, 404} <= statuses


# ------------------------------------------------------------------------------ 9. health
def _health_calls(api: httpx.Client) -> tuple[int, int]:
    stats = api.get("/_local/functions").json()["HealthFunction"]
    return sum(stats["aws_calls"].values()), stats["cold_starts"]


def test_health_checks_dependencies_at_most_once_per_interval_and_names_nothing(stack: RunningStack, api: httpx.Client) -> None:
    # Given the health function's AWS calls so far (a round of checks is 4: the table and three queues)
    calls_before, _ = _health_calls(api)
    started = time.monotonic()
    # When 40 requests arrive (one after another: many at once would only measure cold starts,
    # each instance's first round; tests/unit/test_health_check.py has concurrent callers)
    answers = [api.get("/health") for _ in range(40)]
    elapsed = time.monotonic() - started
    calls, instances = _health_calls(api)
    # Then each instance ran at most one round of checks per 5 s interval
    rounds_allowed = instances * (math.floor(elapsed / 5) + 1)
    assert calls - calls_before <= 4 * rounds_allowed, (calls - calls_before, instances, elapsed)
    # And every answer says ok per kind of dependency, with no resource name and no error text
    assert {answer.status_code for answer in answers} == {200}
    assert all(answer.json() == {"status": "ok", "checks": {"table": "ok", "queues": "ok"}} for answer in answers)
    for name in (stack.physical("Table"), *(stack.physical(q).rsplit("/", 1)[-1] for q in ("PayoutsQueue", "BankSyncQueue"))):
        assert name not in answers[0].text
