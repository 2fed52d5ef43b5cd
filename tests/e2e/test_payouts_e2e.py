"""Payouts on the running local stack, over HTTP like a real client: the API, the payouts queue,
the worker (polled by the stack's SQS event source) and the sandbox payment provider."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from tests.e2e.conftest import RunningStack
from tests.payouts_support import VALID_BODY
from tests.support import wait_for

pytestmark = pytest.mark.e2e


def access_token(stack: RunningStack, user_id: str) -> str:
    """A token signed with the running stack's session key, as sign-in would issue it.
    (The sandbox sign-in helper lands on main separately; this keeps these tests independent of it.)"""
    secret = json.loads(stack.client("secretsmanager").get_secret_value(SecretId=stack.physical("SessionSigningSecret"))["SecretString"])
    kid, now = secret["active_kid"], int(time.time())
    claims = {"iss": stack.api_url, "aud": "payrail-api", "sub": user_id, "sid": f"s-{user_id}", "iat": now, "exp": now + 900}
    return jwt.encode({**claims, "jti": secrets.token_urlsafe(8)}, secret[kid], algorithm="HS256", headers={"kid": kid})


@pytest.fixture
def user(stack: RunningStack, api: httpx.Client, fund) -> Iterator[dict[str, str]]:
    auth = {"authorization": f"Bearer {access_token(stack, f'e2e-{uuid.uuid4().hex[:8]}')}"}
    fund(auth)
    yield auth
    api.put("/sandbox/payments/faults", json={})  # leave the shared stack's provider healthy


def provider_keys(api: httpx.Client) -> list[str]:
    keys: list[str] = []
    cursor = None
    while True:
        page = api.get("/sandbox/payments/v1/payouts", params={"limit": 200, **({"cursor": cursor} if cursor else {})}).json()
        keys += [item["idempotency_key"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return keys


# Submitted to the provider, or moved further by its webhooks (the sandbox pays by default).
HANDED_OFF = {"submitted", "processing", "paid"}


def status_of(api: httpx.Client, user: dict[str, str], payout_id: str) -> dict[str, Any]:
    response = api.get(f"/payouts/{payout_id}", headers=user)
    assert response.status_code == 200
    return dict(response.json())


def test_a_payout_created_over_http_is_submitted_by_the_worker(api: httpx.Client, user: dict[str, str]) -> None:
    # Given a healthy provider
    assert api.put("/sandbox/payments/faults", json={}).status_code == 200
    # When a client creates a payout, then sends the same request again
    key = {"idempotency-key": f"e2e-{uuid.uuid4()}"}
    created = api.post("/payouts", json=VALID_BODY, headers={**user, **key})
    replayed = api.post("/payouts", json=VALID_BODY, headers={**user, **key})
    # Then it is 201 pending, the replay is the same answer, and the worker submits it
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "pending"
    assert (replayed.status_code, replayed.json()) == (201, created.json())
    assert replayed.headers["idempotent-replayed"] == "true"
    payout_id = created.json()["id"]
    # (the sandbox's webhooks may already have moved it on to processing or paid)
    submitted = wait_for(lambda: (p := status_of(api, user, payout_id))["status"] in HANDED_OFF and p, timeout=30)
    assert submitted["updated_at"] > submitted["created_at"]
    assert provider_keys(api).count(payout_id) == 1
    # And it is listed, newest first, for its owner only
    assert api.get("/payouts", headers=user).json()["items"][0]["id"] == payout_id


def test_a_flaky_provider_and_duplicate_deliveries_still_pay_each_payout_once(
    stack: RunningStack, api: httpx.Client, user: dict[str, str]
) -> None:
    # Given the provider fails 20% of requests, rate-limits 10% and times out on 5%
    faults = {"error_rate": 0.2, "rate_limit_rate": 0.1, "timeout_rate": 0.05}
    assert api.put("/sandbox/payments/faults", json=faults).json()["error_rate"] == 0.2
    # And eight payouts, each delivered to the worker twice more
    ids = []
    for i in range(8):
        response = api.post(
            "/payouts", json={**VALID_BODY, "amount": 1000 + i}, headers={**user, "idempotency-key": f"flaky-{uuid.uuid4()}"}
        )
        assert response.status_code == 201
        ids.append(response.json()["id"])
    sqs = stack.client("sqs")
    for payout_id in ids * 2:
        sqs.send_message(QueueUrl=stack.physical("PayoutsQueue"), MessageBody=json.dumps({"payout_id": payout_id}))
    # When the stack's worker has drained them (bounded: backoffs are seconds, a breaker cool-down 15 s)
    wait_for(lambda: all(status_of(api, user, p)["status"] != "pending" for p in ids), timeout=150, interval=1)
    # Then every payout is submitted (or moved on by the sandbox's webhooks), and the provider
    # received exactly one payout for each
    assert {status_of(api, user, p)["status"] for p in ids} <= HANDED_OFF
    received = provider_keys(api)
    assert all(received.count(p) == 1 for p in ids)
