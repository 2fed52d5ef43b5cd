"""On-demand bank syncs in-process on moto: a request joins the sync already queued or running,
requests are limited per user, and a message another run already covers is acknowledged, never
retried towards the dead-letter queue."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from payrail import queues
from payrail.errors import DependencyFailure

from tests.bank_support import BankWorld


@pytest.fixture(scope="module")
def world(moto_endpoint: str) -> Iterator[BankWorld]:
    built = BankWorld(moto_endpoint)
    yield built
    built.close()


@pytest.fixture
def linked(world: BankWorld) -> tuple[str, str, str]:
    """A fresh user with a linked sandbox connection, and an empty sync queue."""
    _drain(world)
    suffix = uuid.uuid4().hex[:8]
    user_id, login = f"user-{suffix}", f"{suffix}@bank.example"
    return user_id, login, world.link(user_id, login)["id"]


def _drain(world: BankWorld) -> list[dict[str, Any]]:
    sqs = world.resources.client("sqs")
    bodies = []
    while got := sqs.receive_message(QueueUrl=world.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
        for message in got:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=world.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def _request(world: BankWorld, user_id: str, connection_id: str) -> Any:
    return world.http.post(f"/bank/connections/{connection_id}/sync", headers=world.auth(user_id))


def _bank_calls(world: BankWorld, login: str) -> int:
    return int(world.stats(login)["sync_requests"])


def _set(world: BankWorld, connection_id: str, update: str, values: dict[str, Any] | None = None) -> None:
    """Change the stored connection directly (what another worker's writes would do)."""
    world.resources.client("dynamodb").update_item(
        TableName=world.table_name,
        Key={"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": "CONN"}},
        UpdateExpression=update,
        **({"ExpressionAttributeValues": values} if values else {}),
    )


def _inside_one_minute() -> None:
    """Rate limits count per minute window: start well inside one."""
    if time.time() % 60 > 54:
        time.sleep(60.5 - time.time() % 60)


def test_requests_while_a_sync_is_queued_join_it_and_its_one_message_runs_it_once(world: BankWorld, linked: tuple[str, str, str]) -> None:
    user_id, login, connection_id = linked
    _inside_one_minute()
    # When the owner asks for a sync three times before the worker runs
    answers = [_request(world, user_id, connection_id) for _ in range(3)]
    # Then all three are 202 with one sync id, the first queued it and the others joined it
    assert [answer.status_code for answer in answers] == [202, 202, 202]
    sync_id = answers[0].json()["sync_id"]
    assert re.fullmatch(r"sync_[0-9a-f]{32}", sync_id)
    assert [answer.json() for answer in answers] == [
        {"connection_id": connection_id, "sync_id": sync_id, "status": "queued", "joined": joined} for joined in (False, True, True)
    ]
    # And one message was sent, naming that sync
    assert _drain(world) == [{"connection_id": connection_id, "sync_id": sync_id}]
    # When the worker runs it, and SQS delivers the same message again
    assert world.sync(connection_id, sync_id) == {"batchItemFailures": []}
    calls = _bank_calls(world, login)
    assert world.sync(connection_id, sync_id) == {"batchItemFailures": []}
    # Then the bank was called for one sync (3 pages) and the duplicate was acknowledged without a call
    assert calls == 3
    assert _bank_calls(world, login) == 3
    assert world.connection(connection_id)["sync_id"] is None
    # And the next request, with nothing queued or running, queues a new sync
    again = _request(world, user_id, connection_id).json()
    assert (again["joined"], again["sync_id"] != sync_id) == (False, True)


def test_a_request_while_the_sync_runs_joins_it_and_says_so(world: BankWorld, linked: tuple[str, str, str]) -> None:
    # Given a requested sync whose run holds the lease
    user_id, _, connection_id = linked
    first = _request(world, user_id, connection_id).json()
    _set(world, connection_id, "SET lease_owner = :o, lease_expires_at = :t", {":o": {"S": "run"}, ":t": {"N": str(int(time.time()) + 60)}})
    # When another request comes
    joined = _request(world, user_id, connection_id).json()
    # Then it joins the running sync
    assert joined == {"connection_id": connection_id, "sync_id": first["sync_id"], "status": "running", "joined": True}


def test_a_scheduled_run_takes_the_pending_sync_so_the_requests_message_is_then_acknowledged(
    world: BankWorld, linked: tuple[str, str, str]
) -> None:
    # Given a requested sync whose message is still in the queue
    user_id, login, connection_id = linked
    sync_id = _request(world, user_id, connection_id).json()["sync_id"]
    # When a scheduled message (no sync id) is handled first, then the request's message
    assert world.sync(connection_id) == {"batchItemFailures": []}
    assert _bank_calls(world, login) == 3
    covered = world.sync(connection_id, sync_id)
    # Then the scheduled run did the requested sync, and the request's message was acknowledged
    # without calling the bank again (it started after the request, so it covered it)
    assert covered == {"batchItemFailures": []}
    assert _bank_calls(world, login) == 3
    assert world.connection(connection_id)["last_sync"]["inserted"] == 15


def test_a_message_arriving_while_its_sync_runs_or_just_after_it_finished_is_acknowledged(
    world: BankWorld, linked: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a requested sync whose run (another worker) holds the lease
    user_id, login, connection_id = linked
    given_back: list[int] = []
    monkeypatch.setattr(queues, "change_visibility", lambda url, handle, seconds: given_back.append(seconds))
    sync_id = _request(world, user_id, connection_id).json()["sync_id"]
    _set(world, connection_id, "SET lease_owner = :o, lease_expires_at = :t", {":o": {"S": "run"}, ":t": {"N": str(int(time.time()) + 60)}})
    # When its message is delivered (again) while that run holds the lease
    while_running = world.sync(connection_id, sync_id)
    # And again once the run has finished (lease and sync id released, as a commit does)
    _set(world, connection_id, "REMOVE lease_owner, lease_expires_at, sync_id, sync_requested_at")
    after_it_finished = world.sync(connection_id, sync_id)
    # Then both were acknowledged, neither came back nor called the bank
    assert while_running == after_it_finished == {"batchItemFailures": []}
    assert given_back == []
    assert _bank_calls(world, login) == 0


def test_a_sync_that_failed_and_will_be_retried_keeps_its_id_so_requests_join_it_and_its_retry_runs_it(
    world: BankWorld, linked: tuple[str, str, str]
) -> None:
    # Given a requested sync whose first run fails on the bank's second page
    user_id, login, connection_id = linked
    sync_id = _request(world, user_id, connection_id).json()["sync_id"]
    world.bank("faults", user=login, kind="server_error", after=1, count=1)
    failed = world.sync(connection_id, sync_id)
    assert len(failed["batchItemFailures"]) == 1
    # When the user asks again, then the message comes back
    joined = _request(world, user_id, connection_id).json()
    retried = world.sync(connection_id, sync_id)
    # Then the request joined the sync still queued, and its retry completed it
    assert (joined["sync_id"], joined["joined"]) == (sync_id, True)
    assert retried == {"batchItemFailures": []}
    connection = world.connection(connection_id)
    assert connection["last_sync"]["status"] == "succeeded"
    assert connection["sync_id"] is None


def test_a_sync_request_left_pending_for_long_without_a_run_is_replaced_not_joined_forever(
    world: BankWorld, linked: tuple[str, str, str]
) -> None:
    # Given a requested sync whose message was lost 20 minutes ago (nothing holds the lease)
    user_id, login, connection_id = linked
    old = _request(world, user_id, connection_id).json()["sync_id"]
    _drain(world)
    _set(world, connection_id, "SET sync_requested_at = :t", {":t": {"N": str(int(time.time()) - 1200)}})
    # When the user asks again
    fresh = _request(world, user_id, connection_id).json()
    # Then a new sync is queued, and a late copy of the old message does nothing
    assert (fresh["joined"], fresh["sync_id"] != old) == (False, True)
    assert _drain(world) == [{"connection_id": connection_id, "sync_id": fresh["sync_id"]}]
    assert world.sync(connection_id, old) == {"batchItemFailures": []}
    assert _bank_calls(world, login) == 0


def test_sync_requests_beyond_the_per_user_limit_are_429_with_retry_after(world: BankWorld, linked: tuple[str, str, str]) -> None:
    user_id, _, connection_id = linked
    stranger = f"user-{uuid.uuid4().hex[:8]}"
    _inside_one_minute()
    # When the owner asks 11 times in a minute (the limit is 10) and a stranger asks for it once
    answers = [_request(world, user_id, connection_id) for _ in range(11)]
    foreign = _request(world, stranger, connection_id)
    # Then the first 10 are 202, the 11th a rate-limited problem with Retry-After
    assert [answer.status_code for answer in answers] == [202] * 10 + [429]
    limited = answers[-1]
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["type"] == "urn:payrail:problem:rate-limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # And the stranger's own limit is untouched: their answer is the 404 of a connection they cannot see
    assert foreign.status_code == 404
    assert len(_drain(world)) == 1


def test_a_request_whose_message_cannot_be_sent_is_a_503_and_queues_nothing(
    world: BankWorld, linked: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id, _, connection_id = linked

    def unavailable(*args: Any, **kwargs: Any) -> str:
        raise DependencyFailure("SQS send failed: EndpointConnectionError")

    # When SQS refuses the message
    with monkeypatch.context() as patched:
        patched.setattr(queues, "send", unavailable)
        failed = _request(world, user_id, connection_id)
    # Then the answer is 503 and the request is withdrawn, so the next one queues a sync of its own
    assert failed.status_code == 503
    assert world.connection(connection_id)["sync_id"] is None
    assert _request(world, user_id, connection_id).json()["joined"] is False
