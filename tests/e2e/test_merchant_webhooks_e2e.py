"""Merchant webhooks on the running local stack, over HTTP like a client: endpoints registered
through the API, payouts made with POST /payouts and moved by the worker and the sandbox
provider's webhooks, the table's stream driving the fan-out (the runtime's DynamoDB Streams
event source), the delivery queue the worker, and receivers on loopback."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from scenarios.payouts import body as payout_body
from scenarios.payouts import create, fund
from tests.e2e.conftest import RunningStack
from tests.e2e.test_payouts_e2e import access_token
from tests.support import wait_for
from tests.webhooks_support import Recorder

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hooks_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack whose retry schedule is compressed to 1 s waits (the template parameter)."""
    running = RunningStack(
        Path(tmp_path_factory.mktemp("hooks-stack")), parameters="WebhookRetrySchedule=0,1,1,1 SandboxWebhookDelaySeconds=0"
    )
    yield running
    running.stop()


@pytest.fixture
def client(hooks_stack: RunningStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hooks_stack.api_url, timeout=150) as http:
        yield http


@pytest.fixture
def user(hooks_stack: RunningStack, client: httpx.Client) -> dict[str, str]:
    """A signed-in user, funded through the sandbox provider before any payout."""
    auth = {"authorization": f"Bearer {access_token(hooks_stack, f'hooks-{uuid.uuid4().hex[:8]}')}"}
    fund(client, auth)
    return auth


@pytest.fixture
def receiver() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.stop()


def register(client: httpx.Client, user: dict[str, str], url: str, events: list[str] | None = None) -> dict[str, Any]:
    response = client.post("/webhook-endpoints", json={"url": url, **({"events": events} if events else {})}, headers=user)
    assert response.status_code == 201, response.text
    return dict(response.json())


def events_of(receiver: Recorder) -> list[dict[str, Any]]:
    return [json.loads(post["body"]) for post in receiver.posts()]


def test_a_receiver_gets_payout_created_to_paid_in_version_order_signed(client: httpx.Client, user, receiver: Recorder) -> None:
    endpoint = register(client, user, receiver.url + "/hooks")
    payout = create(client, user, payout_body(12550, "Invoice 77")).json()
    wanted = ["payout.created", "payout.submitted", "payout.processing", "payout.paid"]
    wait_for(lambda: len(events_of(receiver)) >= 4, timeout=150)
    events = sorted(events_of(receiver), key=lambda e: e["data"]["object"]["version"])
    assert [e["type"] for e in events] == wanted
    assert {e["data"]["object"]["id"] for e in events} == {payout["id"]}
    assert [e["data"]["object"]["version"] for e in events] == [1, 2, 3, 4]
    for post in receiver.posts():
        assert Webhook(endpoint["secret"]).verify(post["body"], post["headers"])["id"] == post["headers"]["webhook-id"]
    shown = client.get(f"/payouts/{payout['id']}", headers=user).json()
    assert events[-1]["data"]["object"] == {**shown, "version": 4}
    time.sleep(2)
    assert len(receiver.posts()) == 4  # no second event for any state


def test_failing_three_times_then_delivered_shows_four_attempts_and_redeliver_sends_once_more(
    client: httpx.Client, user, receiver: Recorder
) -> None:
    endpoint = register(client, user, receiver.url + "/hooks", events=["payout.created"])
    receiver.codes = [500, 500, 500]
    create(client, user, payout_body(100, "retried"))
    wait_for(lambda: len(receiver.posts()) >= 4, timeout=150)
    deliveries = client.get(f"/webhook-endpoints/{endpoint['id']}/deliveries", headers=user).json()["items"]
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in deliveries] == [
        (4, "delivered", 202),
        (3, "failed", 500),
        (2, "failed", 500),
        (1, "failed", 500),
    ]
    event_id = deliveries[0]["event_id"]
    answer = client.post(f"/webhook-endpoints/{endpoint['id']}/events/{event_id}/redeliver", headers=user)
    assert answer.status_code == 202
    wait_for(lambda: len(receiver.posts()) >= 5, timeout=150)
    assert receiver.posts()[-1]["headers"]["webhook-id"] == event_id
    assert len(client.get(f"/webhook-endpoints/{endpoint['id']}/deliveries", headers=user).json()["items"]) == 5


def test_a_disabled_endpoint_gets_nothing_while_an_enabled_one_gets_its_events(client: httpx.Client, user, receiver: Recorder) -> None:
    register(client, user, receiver.url + "/on", events=["payout.created"])
    off = register(client, user, receiver.url + "/off", events=["payout.created"])
    assert client.patch(f"/webhook-endpoints/{off['id']}", json={"status": "disabled"}, headers=user).json()["status"] == "disabled"
    create(client, user, payout_body(100, "only one"))
    wait_for(lambda: len(receiver.posts()) >= 1, timeout=150)
    time.sleep(2)
    assert [post["path"] for post in receiver.posts()] == ["/on"]


def test_thirty_concurrent_creates_give_exactly_thirty_payout_created_events(client: httpx.Client, user, receiver: Recorder) -> None:
    # A first create warms the API's function up, so the thirty race each other, not cold starts.
    assert create(client, user, payout_body(99, "warm-up")).status_code == 201
    register(client, user, receiver.url + "/hooks", events=["payout.created"])
    with ThreadPoolExecutor(max_workers=5) as pool:
        created = list(pool.map(lambda i: create(client, user, payout_body(100 + i, f"batch {i}")), range(30)))
    assert [response.status_code for response in created] == [201] * 30
    ids = {response.json()["id"] for response in created}

    def ours() -> list[dict[str, Any]]:
        return [e for e in events_of(receiver) if e["data"]["object"]["id"] in ids]

    wait_for(lambda: len(ours()) >= 30, timeout=150)
    time.sleep(2)
    events = ours()
    assert len(events) == 30
    assert {e["data"]["object"]["id"] for e in events} == ids
    assert len({e["id"] for e in events}) == 30
    assert {e["type"] for e in events} == {"payout.created"}
