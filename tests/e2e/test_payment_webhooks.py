"""The payout lifecycle on the running local stack, driven over HTTP: the sandbox provider's
signed webhooks make a payout paid; reconciliation finishes it when no webhook is sent; every
event redelivered three times in shuffled order changes nothing more."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from devstack.running import RunningStack
from scenarios import payouts
from tests.e2e.signin import sign_in
from tests.support import ROOT, TEMPLATE

pytestmark = pytest.mark.e2e

PAYOUT = {
    "amount": 12550,
    "currency": "ZAR",
    "beneficiary": {"name": "Thandi Nkosi", "account_number": "62001234567", "bank_code": "250655"},
    "reference": "Invoice 1042",
}


def until(predicate: Any, timeout: float = 60.0, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@pytest.fixture(scope="module")
def token(stack: RunningStack) -> str:
    """A signed-in user, funded through the provider's funding webhook (switched on for it)."""
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        token = sign_in(client, f"webhooks-{uuid.uuid4().hex[:8]}@example.com")
        webhooks(client)
        payouts.fund(client, {"authorization": f"Bearer {token}"}, {PAYOUT["currency"]: 10**9})
        return token


def webhooks(api: httpx.Client, **config: Any) -> None:
    """Set the sandbox's webhook deliveries (and clear any provider faults another test left)."""
    settings = {"enabled": True, "delay_seconds": 1, "failure_rate": 0, "scheme": "standard", **config}
    response = api.put("/sandbox/payments/webhooks", json=settings)
    assert response.status_code == 200, response.text
    assert api.put("/sandbox/payments/faults", json={}).status_code == 200


@pytest.fixture(scope="module", autouse=True)
def default_webhooks_afterwards(stack: RunningStack) -> Iterator[None]:
    """The stack is shared: leave the sandbox's deliveries as they were found."""
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        found = client.get("/sandbox/payments/webhooks").json()
        yield
        client.put("/sandbox/payments/webhooks", json=found)


def create_payout(api: httpx.Client, token: str, correlation_id: str | None = None) -> dict[str, Any]:
    headers = {
        "authorization": f"Bearer {token}",
        "idempotency-key": uuid.uuid4().hex,
        "x-correlation-id": correlation_id or uuid.uuid4().hex,
    }
    response = api.post("/payouts", json=PAYOUT, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def payout_of(api: httpx.Client, token: str, payout_id: str) -> dict[str, Any]:
    response = api.get(f"/payouts/{payout_id}", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def provider_payout_of(api: httpx.Client, payout_id: str) -> dict[str, Any] | None:
    """The sandbox provider's payout for ``payout_id`` (its idempotency key), from its listing."""
    cursor = None
    while True:
        page = api.get("/sandbox/payments/v1/payouts", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
        for item in page["items"]:
            if item["idempotency_key"] == payout_id:
                return dict(item)
        cursor = page.get("next_cursor")
        if not cursor:
            return None


def events_of(api: httpx.Client, provider_payout_id: str) -> list[dict[str, Any]]:
    return list(api.get(f"/sandbox/payments/v1/payouts/{provider_payout_id}/events").json()["items"])


@pytest.mark.parametrize(("scheme", "failure_rate", "final"), [("standard", 0, "paid"), ("jwt", 1, "failed")])
def test_a_payout_reaches_its_final_status_through_the_sandboxs_signed_webhooks(
    stack: RunningStack, api: httpx.Client, token: str, scheme: str, failure_rate: int, final: str
) -> None:
    # Given the sandbox provider sends webhooks signed with the scheme
    webhooks(api, scheme=scheme, failure_rate=failure_rate)

    # When a payout is created
    correlation_id = f"cid-e2e-{uuid.uuid4().hex[:12]}"
    payout = create_payout(api, token, correlation_id)

    # Then, with no test code touching the table, it reaches its final status through the webhooks
    finished = until(lambda: payout_of(api, token, payout["id"])["status"] in ("paid", "failed"))
    seen = payout_of(api, token, payout["id"])
    assert finished, seen
    assert seen["status"] == final
    if final == "failed":
        assert seen["failure_reason"]
    provider = provider_payout_of(api, payout["id"])
    assert provider is not None
    delivered = events_of(api, provider["id"])
    assert [e["type"] for e in delivered] == ["payout.processing", f"payout.{final}"]
    assert all(e["state"] == "delivered" and e["last_status_code"] == 202 for e in delivered)
    # and the create request's correlation id followed it to the worker that applied the webhooks
    applied = [line for line in log_lines(stack, "payment event handled") if line.get("payout_id") == payout["id"]]
    assert {line["correlation_id"] for line in applied} == {correlation_id}
    assert len(applied) == 2


def log_lines(stack: RunningStack, message: str) -> list[dict[str, Any]]:
    found = []
    for raw in stack.log().splitlines():
        start = raw.find("{")
        if start < 0 or message not in raw:
            continue
        try:
            line = json.loads(raw[start:])
        except ValueError:
            continue
        if line.get("message") == message:
            found.append(line)
    return found


def reconcile_later(stack: RunningStack, hours: int = 1) -> dict[str, Any]:
    """Run the scheduled sync as EventBridge would ``hours`` from now, against the running stack."""
    event = json.loads((ROOT / "events/scheduled_sync/scheduled.json").read_text())
    event["time"] = (datetime.now(UTC) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = stack.workdir / "later.json"
    path.write_text(json.dumps(event))
    done = subprocess.run(
        [sys.executable, "-m", "devstack", "--template", str(TEMPLATE), "invoke", "ScheduledSyncFunction", "-e", str(path)],
        cwd=stack.workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return dict(json.loads(done.stdout[done.stdout.index("{") :]))


def test_with_the_webhook_sender_switched_off_reconciliation_brings_the_payout_to_its_final_status(
    stack: RunningStack, api: httpx.Client, token: str
) -> None:
    # Given a provider that pays but sends no webhooks
    webhooks(api, enabled=False)
    try:
        payout = create_payout(api, token)
        provider = until(lambda: (p := provider_payout_of(api, payout["id"])) and p["status"] == "paid" and p)
        assert provider, provider_payout_of(api, payout["id"])
        assert payout_of(api, token, payout["id"])["status"] == "submitted"
        assert {e["state"] for e in events_of(api, provider["id"])} == {"suppressed"}

        # When the schedule runs after the stuck threshold
        result = reconcile_later(stack)

        # Then the payout takes the provider's final status
        assert result["reconcile_payouts"]["provider_applied"] >= 1
        assert payout_of(api, token, payout["id"])["status"] == "paid"
    finally:
        webhooks(api)


def test_every_event_redelivered_three_times_in_shuffled_order_changes_nothing_more(
    stack: RunningStack, api: httpx.Client, token: str
) -> None:
    # Given two payouts finished through webhooks, one paid and one failed
    webhooks(api, failure_rate=0)
    paid = create_payout(api, token)
    assert until(lambda: payout_of(api, token, paid["id"])["status"] == "paid")
    webhooks(api, failure_rate=1)
    failed = create_payout(api, token)
    assert until(lambda: payout_of(api, token, failed["id"])["status"] == "failed")
    webhooks(api)
    providers = {pid: provider_payout_of(api, pid) for pid in (paid["id"], failed["id"])}
    events = [e for p in providers.values() if p for e in events_of(api, p["id"])]
    assert len(events) == 4
    ddb, table = stack.client("dynamodb"), stack.physical("Table")

    def version(payout_id: str) -> int:
        return int(ddb.get_item(TableName=table, Key={"pk": {"S": f"PAYOUT#{payout_id}"}, "sk": {"S": "PAYOUT"}})["Item"]["version"]["N"])

    def outcome(event_id: str) -> str:
        return str(ddb.get_item(TableName=table, Key={"pk": {"S": f"EVENT#{event_id}"}, "sk": {"S": "EVENT"}})["Item"]["outcome"]["S"])

    before = {pid: version(pid) for pid in providers}
    outcomes = {e["id"]: outcome(e["id"]) for e in events}

    # When every event is redelivered three times, in shuffled order, each redelivery received
    # before the next is asked for (sent all at once, they would make the receiver start new
    # instances, and a start that outlasts the sandbox's 5 s timeout under a loaded machine is a
    # failed delivery that the sandbox retries only after its queue's 180 s visibility timeout)
    webhooks(api, delay_seconds=0)
    redeliveries = [e["id"] for e in events] * 3
    random.Random(7).shuffle(redeliveries)
    attempts = {e["id"]: e["attempts"] for e in events}

    def delivered(event_id: str) -> bool:
        now = {e["id"]: e for p in providers.values() if p for e in events_of(api, p["id"])}[event_id]
        return bool(now["attempts"] >= attempts[event_id] and now["state"] == "delivered")

    for event_id in redeliveries:
        assert api.post(f"/sandbox/payments/v1/events/{event_id}/redeliver").status_code == 202
        attempts[event_id] += 1
        assert until(lambda event_id=event_id: delivered(event_id)), event_id

    # Then the final statuses are unchanged and no event was applied a second time
    assert payout_of(api, token, paid["id"])["status"] == "paid"
    assert payout_of(api, token, failed["id"])["status"] == "failed"
    assert {pid: version(pid) for pid in providers} == before
    assert {e["id"]: outcome(e["id"]) for e in events} == outcomes
    assert "applied" in outcomes.values()
