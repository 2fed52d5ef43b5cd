"""Bank sync in-process on moto: linking, the worker's lease, refresh, paging, backoff and counts.

One world (template resources, functions loaded in-process, the sandbox bank reached through the
local gateway's event building) serves the module; every test links its own sandbox user.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from payrail import queues
from payrail.bank import envelope, sync
from payrail.bank.envelope import ProviderTokens

from tests.bank_support import BankWorld


@pytest.fixture(scope="module")
def world(moto_endpoint: str) -> Iterator[BankWorld]:
    built = BankWorld(moto_endpoint)
    yield built
    built.close()


def _new_user() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"user-{suffix}", f"{suffix}@bank.example"


def _linked(world: BankWorld) -> tuple[str, str, str]:
    user_id, login = _new_user()
    return user_id, login, world.link(user_id, login)["id"]


def _summary(world: BankWorld, connection_id: str) -> dict:
    return dict(world.connection(connection_id)["last_sync"])


def _counts(summary: dict) -> tuple[int, int, int, int, int]:
    return summary["inserted"], summary["updated"], summary["unchanged"], summary["removed"], summary["pages"]


# ------------------------------------------------------------------------------ counts
def test_first_sync_inserts_15_in_3_pages_and_an_unchanged_resync_writes_nothing(world: BankWorld) -> None:
    # Given a freshly linked sandbox connection (15 transactions at the bank)
    _, _, connection_id = _linked(world)
    # When it is synced twice
    first = world.sync(connection_id)
    after_first = _summary(world, connection_id)
    second = world.sync(connection_id)
    after_second = _summary(world, connection_id)
    # Then the first run inserts 15 in 3 pages, the second finds nothing new and writes nothing
    assert first == {"batchItemFailures": []}
    assert second == {"batchItemFailures": []}
    assert _counts(after_first) == (15, 0, 0, 0, 3)
    assert after_first["written"] == 15
    assert _counts(after_second)[:4] == (0, 0, 0, 0)
    assert after_second["written"] == 0
    assert len(world.stored_transactions(connection_id)) == 15


def test_added_modified_and_removed_transactions_are_counted_exactly(world: BankWorld) -> None:
    # Given a synced connection
    _, login, connection_id = _linked(world)
    world.sync(connection_id)
    # When the bank adds 3 and modifies 2, then later removes 1
    changed = world.bank("transactions", user=login, add=3, modify=2)
    world.sync(connection_id)
    after_changes = _summary(world, connection_id)
    removed = world.bank("transactions", user=login, remove=1)
    world.sync(connection_id)
    after_removal = _summary(world, connection_id)
    # Then each sync counts exactly what changed, and the stored rows follow the bank
    assert _counts(after_changes)[:4] == (3, 2, 0, 0)
    assert after_changes["written"] == 5
    assert _counts(after_removal)[:4] == (0, 0, 0, 1)
    stored = {t["transaction_id"]: t for t in world.stored_transactions(connection_id)}
    assert len(stored) == 17
    assert removed["removed"][0] not in stored
    for transaction_id in changed["modified"]:
        if transaction_id != removed["removed"][0]:
            assert stored[transaction_id]["description"].endswith("(amended)")


def test_a_full_resync_from_the_beginning_counts_everything_unchanged_and_writes_nothing(world: BankWorld) -> None:
    # Given a synced connection whose cursor is then reset to the beginning (a full history replay)
    _, _, connection_id = _linked(world)
    world.sync(connection_id)
    world.resources.client("dynamodb").update_item(
        TableName=world.table_name,
        Key={"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": "CONN"}},
        UpdateExpression="SET sync_cursor = :empty",
        ExpressionAttributeValues={":empty": {"S": ""}},
    )
    # When it is synced again
    world.sync(connection_id)
    # Then all 15 are unchanged and not one is rewritten
    summary = _summary(world, connection_id)
    assert _counts(summary) == (0, 0, 15, 0, 3)
    assert summary["written"] == 0


# ------------------------------------------------------------------------------ resumability
def test_a_failure_mid_pagination_keeps_the_cursor_and_the_next_run_completes_the_same_totals(world: BankWorld) -> None:
    # Given a connection whose bank fails the second page once
    _, login, connection_id = _linked(world)
    world.bank("faults", user=login, kind="server_error", after=1, count=1)
    # When the worker runs
    failed = world.sync(connection_id)
    # Then the message is given back, the cursor has not moved and the lease is released
    assert len(failed["batchItemFailures"]) == 1
    connection = world.connection(connection_id)
    assert connection["sync_cursor"] == ""
    assert "lease_owner" not in connection
    assert connection["last_sync"]["status"] == "retrying"
    assert len(world.stored_transactions(connection_id)) == 5
    # When it runs again
    assert world.sync(connection_id) == {"batchItemFailures": []}
    # Then it completes with the totals an uninterrupted first sync has
    summary = _summary(world, connection_id)
    assert _counts(summary) == (15, 0, 0, 0, 3)
    assert summary["status"] == "succeeded"
    assert world.connection(connection_id)["sync_cursor"] != ""
    assert len(world.stored_transactions(connection_id)) == 15


def test_a_mutation_during_pagination_restarts_from_the_starting_cursor_with_exact_counts(world: BankWorld) -> None:
    # Given a bank that reports its data changed while the second page was asked for
    _, login, connection_id = _linked(world)
    world.bank("faults", user=login, kind="mutation_during_pagination", after=1, count=1)
    # When the worker runs
    assert world.sync(connection_id) == {"batchItemFailures": []}
    # Then it restarted from the beginning, counted each transaction once and rewrote nothing
    summary = _summary(world, connection_id)
    assert _counts(summary) == (15, 0, 0, 0, 3)
    assert summary["written"] == 15
    assert world.stats(login)["sync_requests"] == 1 + 1 + 3


# ------------------------------------------------------------------------------ backoff
def test_429_with_retry_after_is_waited_out_and_the_sync_completes(world: BankWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a bank that answers the next two requests with 429 and Retry-After: 3
    _, login, connection_id = _linked(world)
    world.bank("faults", user=login, kind="rate_limited", count=2, retry_after=3)
    waits: list[float] = []
    monkeypatch.setattr(sync, "sleep", waits.append)
    # When the worker runs
    assert world.sync(connection_id) == {"batchItemFailures": []}
    # Then it waited exactly what the bank asked, twice, and then synced everything
    assert waits == [3, 3]
    assert _counts(_summary(world, connection_id)) == (15, 0, 0, 0, 3)


def test_a_retry_after_beyond_the_time_budget_gives_the_message_back_for_that_long(
    world: BankWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a bank that asks us to come back in two minutes
    _, login, connection_id = _linked(world)
    world.bank("faults", user=login, kind="rate_limited", count=1, retry_after=120)
    given_back: list[int] = []
    monkeypatch.setattr(queues, "change_visibility", lambda url, handle, seconds: given_back.append(seconds))
    monkeypatch.setattr(sync, "sleep", lambda seconds: pytest.fail("must not sleep past its budget"))
    # When the worker runs
    answer = world.sync(connection_id)
    # Then the record fails quietly, comes back after the bank's delay, and nothing moved
    assert len(answer["batchItemFailures"]) == 1
    assert given_back == [121]
    connection = world.connection(connection_id)
    assert connection["sync_cursor"] == ""
    assert "lease_owner" not in connection


# ------------------------------------------------------------------------------ tokens
def test_an_expired_access_token_is_refreshed_once_and_the_rotated_tokens_are_stored_sealed(world: BankWorld) -> None:
    # Given a linked connection whose access token the bank has expired
    _, login, connection_id = _linked(world)
    before = world.tokens(connection_id)["tokens_ciphertext"]
    world.bank("token-expiry", user=login)
    # When the worker runs
    assert world.sync(connection_id) == {"batchItemFailures": []}
    # Then one refresh happened, the sync completed and the stored (sealed) tokens changed
    stats = world.stats(login)
    assert stats["token_grants"]["refresh_token"] == 1
    assert _counts(_summary(world, connection_id)) == (15, 0, 0, 0, 3)
    assert world.tokens(connection_id)["tokens_ciphertext"] != before
    # And the next run uses the stored rotated tokens without refreshing again
    world.sync(connection_id)
    assert world.stats(login)["token_grants"]["refresh_token"] == 1


def test_a_bank_that_keeps_answering_401_gets_one_refresh_and_no_loop(world: BankWorld) -> None:
    # Given a bank that refuses every access token from now on
    _, login, connection_id = _linked(world)
    world.bank("faults", user=login, kind="unauthorized", count=50)
    # When the worker runs (twice)
    first = world.sync(connection_id)
    world.sync(connection_id)
    # Then exactly one refresh and two sync requests happened, the message is not retried,
    # and the connection asks the user to link again
    stats = world.stats(login)
    assert first == {"batchItemFailures": []}
    assert stats["token_grants"]["refresh_token"] == 1
    assert stats["sync_requests"] == 2
    assert world.connection(connection_id)["status"] == "reauth_required"
    assert world.connection(connection_id)["sync_cursor"] == ""


def test_no_token_string_is_ever_in_the_table_or_the_logs(
    world: BankWorld, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a link, a refresh and a sync, with every log record of every library captured at DEBUG
    caplog.set_level(logging.DEBUG)
    _, login, connection_id = _linked(world)
    world.bank("token-expiry", user=login)
    world.sync(connection_id)
    assert world.stats(login)["token_grants"]["refresh_token"] == 1
    # When the whole table and every log line are searched
    captured = capfd.readouterr()
    records = "\n".join(json.dumps(record.__dict__, default=str) for record in caplog.records)
    dump = world.table_dump()
    # Then neither holds an access or refresh token
    for secret_prefix in ("sandbox-access-", "sandbox-refresh-"):
        assert secret_prefix not in dump
        assert secret_prefix not in records
        assert secret_prefix not in captured.out + captured.err
    assert "bank sync finished" in records  # the logs were really captured
    assert "bank tokens refreshed" in records


def test_sealed_tokens_moved_to_another_connection_do_not_open(world: BankWorld) -> None:
    # Given tokens sealed for one connection
    tokens = ProviderTokens("sandbox-access-x", "sandbox-refresh-y", int(time.time()) + 60)
    sealed = envelope.seal(tokens, "conn_a", world.resources.ref("TokensKey"))
    # When they are opened for the right and for another connection
    opened = envelope.open_sealed(sealed, "conn_a")
    # Then only the right one opens
    assert opened == tokens
    with pytest.raises(envelope.TokensUnreadable):
        envelope.open_sealed(sealed, "conn_b")
    assert b"sandbox-access" not in sealed.ciphertext


# ------------------------------------------------------------------------------ the lease
def test_four_concurrent_syncs_of_one_connection_give_one_sync_and_no_errors(
    world: BankWorld, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a connection whose first request is rate limited for 3 s (so the winner is still syncing when the others arrive)
    _, login, connection_id = _linked(world)
    world.bank("faults", user=login, kind="rate_limited", count=1, retry_after=3)
    given_back: list[int] = []
    monkeypatch.setattr(queues, "change_visibility", lambda url, handle, seconds: given_back.append(seconds))
    capfd.readouterr()
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    barrier = threading.Barrier(4)
    answers: list[dict] = []

    def worker() -> None:
        barrier.wait()
        answers.append(world.sync(connection_id))

    # When four workers receive a message for it at once
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # Then one synced, and the three others, covered by that run, were acknowledged (not retried
    # towards the DLQ, no visibility change) without calling the bank, and nothing logged an error
    failures = [answer for answer in answers if answer["batchItemFailures"]]
    assert len(answers) == 4
    assert failures == []
    assert given_back == []
    assert world.stats(login)["sync_requests"] == 1 + 3
    assert _counts(_summary(world, connection_id)) == (15, 0, 0, 0, 3)
    assert len(world.stored_transactions(connection_id)) == 15
    logged = capfd.readouterr()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert sum("being synced by another run" in r.getMessage() for r in caplog.records) == 3
    assert "Traceback" not in logged.out + logged.err


def test_a_lease_left_by_a_dead_worker_blocks_until_it_expires(world: BankWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a connection leased by a worker that died
    _, login, connection_id = _linked(world)
    monkeypatch.setattr(queues, "change_visibility", lambda *args: None)
    dynamodb = world.resources.client("dynamodb")

    def lease(until: int) -> None:
        dynamodb.update_item(
            TableName=world.table_name,
            Key={"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": "CONN"}},
            UpdateExpression="SET lease_owner = :dead, lease_expires_at = :until",
            ExpressionAttributeValues={":dead": {"S": "dead-worker"}, ":until": {"N": str(until)}},
        )

    lease(int(time.time()) + 300)
    # When a worker runs while the lease is live, and again after it expired
    blocked = world.sync(connection_id)
    requests_while_blocked = world.stats(login)["sync_requests"]
    lease(int(time.time()) - 1)
    after_expiry = world.sync(connection_id)
    # Then the first was acknowledged without touching the bank (the dead run's own message comes
    # back after the visibility timeout, when the lease has expired), the second synced
    assert blocked == {"batchItemFailures": []}
    assert requests_while_blocked == 0
    assert after_expiry == {"batchItemFailures": []}
    assert _counts(_summary(world, connection_id)) == (15, 0, 0, 0, 3)
    assert "lease_owner" not in world.connection(connection_id)


def test_a_message_for_a_deleted_connection_is_dropped_and_a_malformed_one_fails_towards_the_dlq(world: BankWorld) -> None:
    # Given a message for a connection that no longer exists, and one whose body is not a sync request
    bad = world.sync_event("conn_does_not_exist")
    malformed = world.sync_event("x")
    malformed["Records"][0]["body"] = json.dumps({"connection_id": "../../etc"})
    # When the worker handles them
    handler = world.handlers["BankSyncWorkerFunction"]
    from tests.support import LambdaContext

    # Then the first is done with (nothing to sync), and the poison message fails, as on every
    # queue of the product, so that after the queue's receives it rests in the DLQ, which alarms
    assert handler(bad, LambdaContext()) == {"batchItemFailures": []}
    assert handler(malformed, LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": malformed["Records"][0]["messageId"]}]}


# ------------------------------------------------------------------------------ fan-out and on demand
def _drain(world: BankWorld) -> list[str]:
    sqs = world.resources.client("sqs")
    ids = []
    while True:
        got = sqs.receive_message(QueueUrl=world.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return ids
        for message in got:
            ids.append(json.loads(message["Body"])["connection_id"])
            sqs.delete_message(QueueUrl=world.queue_url, ReceiptHandle=message["ReceiptHandle"])


def _tick(seconds_ahead: int = 0) -> dict:
    """A scheduled event for now (EventBridge gives whole seconds), or ``seconds_ahead`` later."""
    from datetime import UTC, datetime, timedelta

    from tests.support import load_event

    at = datetime.now(UTC) + timedelta(seconds=seconds_ahead)
    return load_event("scheduled_sync/scheduled.json", time=at.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _scheduled(world: BankWorld) -> Callable[[dict], Any]:
    """The scheduled function, called as Lambda would: with its whole timeout left."""
    from tests.support import context_of

    handler = world.handlers["ScheduledSyncFunction"]
    return lambda event: handler(event, context_of(world.resources, "ScheduledSyncFunction"))


def test_the_schedule_fans_out_one_message_per_due_connection_and_never_twice(world: BankWorld) -> None:
    scheduled = _scheduled(world)
    scheduled(_tick(seconds_ahead=1))  # every connection earlier tests linked, up to this very second, is claimed
    _drain(world)
    # Given two newly linked connections (due at once)
    _, _, first = _linked(world)
    _, _, second = _linked(world)
    # When the schedule fires twice
    time.sleep(1)  # the schedule's clock has whole seconds; the links are now strictly in the past
    result = scheduled(_tick())
    again = scheduled(_tick())
    # Then each was enqueued exactly once
    assert result["fan_out_bank_syncs"] == {"due": 2, "enqueued": 2}
    assert again["fan_out_bank_syncs"] == {"due": 0, "enqueued": 0}
    assert sorted(_drain(world)) == sorted([first, second])


def test_connections_not_claimed_by_the_deadline_stay_due_and_the_next_run_sends_them(world: BankWorld) -> None:
    from datetime import UTC, datetime

    from payrail.bank.schedule import fan_out_bank_syncs
    from payrail.clock import Deadline
    from payrail.settings import BankSyncQueueSettings

    scheduled = _scheduled(world)
    scheduled(_tick(seconds_ahead=1))  # every connection earlier tests linked, up to this very second, is claimed
    _drain(world)
    # Given a newly linked connection, due at once
    _, _, connection_id = _linked(world)
    time.sleep(1)
    # When the fan-out runs with its deadline already passed
    late = fan_out_bank_syncs(datetime.now(UTC), Deadline(0), world.resources.settings("ScheduledSyncFunction", BankSyncQueueSettings))
    # Then it claimed and sent nothing, and said so
    assert late == {"due": 1, "enqueued": 0, "deferred_to_next_run": 1}
    assert _drain(world) == []
    # And the next run, with time to spare, sends it
    assert scheduled(_tick())["fan_out_bank_syncs"] == {"due": 1, "enqueued": 1}
    assert _drain(world) == [connection_id]


def test_sync_now_queues_the_callers_connection_and_hides_others(world: BankWorld) -> None:
    _drain(world)
    user_id, _, connection_id = _linked(world)
    stranger, _ = _new_user()
    # When the owner, a stranger and an anonymous caller ask for a sync
    own = world.http.post(f"/bank/connections/{connection_id}/sync", headers=world.auth(user_id))
    foreign = world.http.post(f"/bank/connections/{connection_id}/sync", headers=world.auth(stranger))
    anonymous = world.http.post(f"/bank/connections/{connection_id}/sync")
    bad_id = world.http.post("/bank/connections/not%20an%20id/sync", headers=world.auth(user_id))
    # Then only the owner's is queued
    assert own.status_code == 202
    assert own.json() == {"connection_id": connection_id, "sync_id": own.json()["sync_id"], "status": "queued", "joined": False}
    assert re.fullmatch(r"sync_[0-9a-f]{32}", own.json()["sync_id"])
    assert foreign.status_code == 404
    assert anonymous.status_code == 401
    assert bad_id.status_code == 400
    assert all(r.headers["content-type"] == "application/problem+json" for r in (foreign, anonymous, bad_id))
    assert _drain(world) == [connection_id]


# ------------------------------------------------------------------------------ reading
def test_connections_and_transactions_are_listed_for_their_owner_only(world: BankWorld) -> None:
    # Given a synced connection
    user_id, _, connection_id = _linked(world)
    world.sync(connection_id)
    stranger, _ = _new_user()
    # When the owner lists connections and pages through transactions
    connections = world.http.get("/bank/connections", headers=world.auth(user_id)).json()
    first = world.http.get("/bank/transactions", params={"limit": 10}, headers=world.auth(user_id)).json()
    second = world.http.get("/bank/transactions", params={"limit": 10, "cursor": first["next_cursor"]}, headers=world.auth(user_id)).json()
    narrowed = world.http.get("/bank/transactions", params={"connection_id": connection_id}, headers=world.auth(user_id)).json()
    # Then the summary and all 15 transactions come back once each, newest first
    (connection,) = connections["items"]
    assert connection["id"] == connection_id
    assert connection["last_sync"]["inserted"] == 15
    assert connection["last_sync"]["status"] == "succeeded"
    assert "tokens_ciphertext" not in connection
    items = first["items"] + second["items"]
    assert len(first["items"]) == 10
    assert len({t["id"] for t in items}) == 15
    assert [t["date"] for t in items] == sorted((t["date"] for t in items), reverse=True)
    assert all(isinstance(t["amount"], int) and t["currency"] == "ZAR" for t in items)
    assert len(narrowed["items"]) == 15
    # And a stranger sees none of it
    assert world.http.get("/bank/connections", headers=world.auth(stranger)).json()["items"] == []
    assert world.http.get("/bank/transactions", headers=world.auth(stranger)).json()["items"] == []
    foreign = world.http.get("/bank/transactions", params={"connection_id": connection_id}, headers=world.auth(stranger))
    assert foreign.status_code == 404
    forged = world.http.get("/bank/transactions", params={"cursor": first["next_cursor"]}, headers=world.auth(stranger))
    assert forged.status_code == 400


# ------------------------------------------------------------------------------ linking
def _start(world: BankWorld, user_id: str, login: str) -> tuple[str, str]:
    from tests.bank_support import binding_cookie

    start = world.http.get("/bank/connect", params={"login_hint": login}, headers=world.auth(user_id))
    assert start.status_code == 302
    assert start.headers["location"].startswith("http://127.0.0.1:3000/sandbox/bank/authorize?")
    assert "code_challenge_method=S256" in start.headers["location"]
    cookie = next(c for c in start.headers.get_list("set-cookie") if c.startswith("__Secure-payrail_oauth="))
    assert "HttpOnly" in cookie
    assert "Path=/bank" in cookie
    back = world.http.get(start.headers["location"])
    return back.headers["location"], binding_cookie(start)


def _connection_count(world: BankWorld, user_id: str) -> int:
    return len(world.http.get("/bank/connections", headers=world.auth(user_id)).json()["items"])


def test_a_callback_is_single_use_and_bound_to_the_browser_that_started_it(world: BankWorld) -> None:
    user_id, login = _new_user()
    callback, binding = _start(world, user_id, login)
    json_accept = {"Accept": "application/json"}
    # When the callback comes without the cookie, with another browser's cookie, then properly, then replayed
    no_cookie = world.http.get(callback, headers=json_accept)
    other_browser = world.http.get(callback, headers={**json_accept, "Cookie": "__Secure-payrail_oauth=someone-else"})
    # (a rejected attempt is consumed only by its own browser: the real one still works)
    proper = world.http.get(callback, headers={**json_accept, "Cookie": f"__Secure-payrail_oauth={binding}"})
    replay = world.http.get(callback, headers={**json_accept, "Cookie": f"__Secure-payrail_oauth={binding}"})
    # Then only the proper one links, once
    assert no_cookie.status_code == 400
    assert other_browser.status_code == 400
    assert proper.status_code == 201
    assert replay.status_code == 400
    assert replay.headers["content-type"] == "application/problem+json"
    assert _connection_count(world, user_id) == 1


def test_a_tampered_state_or_a_bank_error_links_nothing(world: BankWorld) -> None:
    user_id, login = _new_user()
    callback, binding = _start(world, user_id, login)
    cookie = {"Accept": "application/json", "Cookie": f"__Secure-payrail_oauth={binding}"}
    tampered = world.http.get(callback.replace("state=", "state=x"), headers=cookie)
    refused = world.http.get(callback + "&error=access_denied", headers=cookie)
    assert tampered.status_code == 400
    assert refused.status_code == 400
    assert _connection_count(world, user_id) == 0


def test_connect_needs_a_signed_in_user_and_a_relative_redirect(world: BankWorld) -> None:
    anonymous = world.http.get("/bank/connect")
    open_redirect = world.http.get("/bank/connect", params={"redirect_to": "https://evil.example/"}, headers=world.auth("u-x"))
    assert anonymous.status_code == 401
    assert open_redirect.status_code == 400


def test_the_browser_flow_redirects_back_to_the_relative_path_it_asked_for(world: BankWorld) -> None:
    user_id, login = _new_user()
    from tests.bank_support import binding_cookie

    start = world.http.get("/bank/connect", params={"login_hint": login, "redirect_to": "/settings/banks"}, headers=world.auth(user_id))
    back = world.http.get(
        world.http.get(start.headers["location"]).headers["location"],
        headers={"Cookie": f"__Secure-payrail_oauth={binding_cookie(start)}"},
    )
    assert back.status_code == 302, back.text
    assert back.headers["location"] == "/settings/banks"
    assert _connection_count(world, user_id) == 1


@pytest.mark.parametrize("name", ["connect", "connections", "sync_now", "transactions"])
def test_the_sample_api_events_reach_their_routes_and_a_placeholder_token_is_refused(world: BankWorld, name: str) -> None:
    from tests.support import LambdaContext, load_event

    response = world.handlers["BankApiFunction"](load_event(f"bank_api/{name}.json"), LambdaContext())
    assert response["statusCode"] == 401
    assert response["headers"]["Content-Type"] == "application/problem+json"


def test_the_sample_callback_event_without_a_stored_attempt_is_a_400(world: BankWorld) -> None:
    from tests.support import LambdaContext, load_event

    response = world.handlers["BankApiFunction"](load_event("bank_api/callback.json"), LambdaContext())
    assert response["statusCode"] == 400


def test_the_sample_worker_event_for_an_unknown_connection_is_dropped_not_retried(world: BankWorld) -> None:
    from tests.support import LambdaContext, load_event

    assert world.handlers["BankSyncWorkerFunction"](load_event("bank_sync_worker/sync.json"), LambdaContext()) == {"batchItemFailures": []}


# ------------------------------------------------------------------------------ the sandbox bank's contract
def _sandbox_code(world: BankWorld, login: str, verifier: str) -> str:
    from urllib.parse import parse_qs, urlsplit

    from payrail.auth.oauth_state import pkce_challenge

    authorize = world.http.get(
        "/sandbox/bank/authorize",
        params={
            "response_type": "code",
            "client_id": "payrail",
            "redirect_uri": "http://127.0.0.1:3000/bank/callback",
            "state": "s1",
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
            "login_hint": login,
        },
    )
    assert authorize.status_code == 302, authorize.text
    query = parse_qs(urlsplit(authorize.headers["location"]).query)
    assert query["state"] == ["s1"]
    return query["code"][0]


def _exchange(world: BankWorld, code: str, verifier: str):
    return world.http.post(
        "/sandbox/bank/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "client_id": "payrail",
            "redirect_uri": "http://127.0.0.1:3000/bank/callback",
        },
    )


def test_the_sandbox_bank_checks_pkce_and_a_code_works_once(world: BankWorld) -> None:
    _, login = _new_user()
    verifier = "v" * 50
    wrong = _exchange(world, _sandbox_code(world, login, verifier), "w" * 50)
    code = _sandbox_code(world, login, verifier)
    right = _exchange(world, code, verifier)
    replayed = _exchange(world, code, verifier)
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    assert right.status_code == 200
    assert right.json()["access_token"].startswith("sandbox-access-")
    assert right.json()["refresh_token"].startswith("sandbox-refresh-")
    assert replayed.status_code == 400


def test_the_sandbox_bank_rotates_refresh_tokens_and_pages_15_transactions_in_3_pages_of_5(world: BankWorld) -> None:
    _, login = _new_user()
    tokens = _exchange(world, _sandbox_code(world, login, "v" * 50), "v" * 50).json()
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "payrail"}
    rotated = world.http.post("/sandbox/bank/token", data=refresh)
    reused = world.http.post("/sandbox/bank/token", data=refresh)
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != tokens["refresh_token"]
    assert reused.status_code == 400
    bearer = {"Authorization": f"Bearer {rotated.json()['access_token']}"}
    pages, cursor, seen = 0, "", set()
    while True:
        page = world.http.post("/sandbox/bank/transactions/sync", json={"cursor": cursor}, headers=bearer).json()
        pages += 1
        seen |= {t["transaction_id"] for t in page["added"]}
        assert len(page["added"]) == 5
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert (pages, len(seen)) == (3, 15)
    # an expired access token is refused with 401
    world.bank("token-expiry", user=login)
    expired = world.http.post("/sandbox/bank/transactions/sync", json={"cursor": cursor}, headers=bearer)
    assert expired.status_code == 401
