"""POST /payouts, GET /payouts and GET /payouts/{id}, in-process on moto."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.payouts_support import VALID_BODY, call, funded_token, http_event, item_keys, mint_token, serialise_moto_transactions
from tests.support import Resources

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@pytest.fixture
def api(handler_of) -> Handler:
    return handler_of("PayoutsApiFunction")


@pytest.fixture
def token(resources: Resources) -> Callable[[str], str]:
    """A user's token; the user is funded (through the payment events worker) the first time."""
    cache: dict[str, str] = {}

    def of(user_id: str) -> str:
        if user_id not in cache:
            cache[user_id] = funded_token(resources, user_id)
        return cache[user_id]

    return of


def post(api: Handler, token: str, body: Any = VALID_BODY, key: str | None = "key-1", raw_body: str | None = None, **headers: str):
    all_headers = {"authorization": f"Bearer {token}", **headers}
    if key is not None:
        all_headers["idempotency-key"] = key
    return call(api, http_event("POST", "/payouts", body=body, raw_body=raw_body, headers=all_headers))


def get(api: Handler, token: str, path: str = "/payouts", query: dict[str, str] | None = None):
    route = "/payouts/{payout_id}" if path.count("/") > 1 else None
    parameters = {"payout_id": path.rsplit("/", 1)[-1]} if route else None
    return call(
        api, http_event("GET", path, headers={"authorization": f"Bearer {token}"}, query=query, route=route, path_parameters=parameters)
    )


def queued(resources: Resources) -> list[dict[str, Any]]:
    answer = resources.client("sqs").receive_message(
        QueueUrl=resources.ref("PayoutsQueue"), MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )
    return answer.get("Messages", [])


def test_a_new_payout_is_created_pending_and_handed_to_the_worker(api: Handler, token, resources: Resources) -> None:
    # Given a signed-in user
    # When they create a payout
    status, headers, body = post(api, token("alice"))
    # Then it is 201 pending, with the amount in minor units, and its id is on the payouts queue
    assert status == 201
    assert "idempotent-replayed" not in headers
    assert body["status"] == "pending"
    assert (body["amount"], body["currency"], body["beneficiary"], body["reference"]) == (
        12550,
        "ZAR",
        VALID_BODY["beneficiary"],
        "Invoice 1042",
    )
    assert body["created_at"].endswith("Z")
    messages = queued(resources)
    assert [json.loads(m["Body"]) for m in messages] == [{"payout_id": body["id"]}]
    assert messages[0]["MessageAttributes"]["correlation_id"]["StringValue"] == headers["x-correlation-id"]
    # And the payout is readable by its owner
    assert get(api, token("alice"), f"/payouts/{body['id']}")[2] == body | {"failure_reason": None}


def test_a_failed_hand_off_still_answers_201_and_leaves_the_payout_marked_for_reconciliation(
    api: Handler, token, resources: Resources, monkeypatch
) -> None:
    # Given SQS refuses the send
    from payrail import aws

    bearer = token("alice")

    def refuse(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessage")

    monkeypatch.setattr(aws.client("sqs"), "send_message", refuse)
    # When a payout is created
    status, _, body = post(api, bearer)
    # Then the client still gets 201 pending: the payout is durable, nothing is queued, and its
    # outbox marker (what reconciliation re-enqueues from) is in the table
    assert status == 201
    assert body["status"] == "pending"
    keys = item_keys(resources)
    assert f"PAYOUT#{body['id']}" in keys
    assert any(k.startswith("OUTBOX#") for k in keys)
    assert queued(resources) == []
    # And the marker says the hand-off failed, so reconciliation need not wait to be sure it is lost
    from payrail.db import keys as table_keys
    from payrail.db import serialize

    marker = resources.client("dynamodb").get_item(
        TableName=resources.ref("Table"), Key=serialize(table_keys.outbox(body["id"], body["created_at"]))
    )["Item"]
    assert marker["hand_off_failed"] == {"BOOL": True}


def test_a_key_is_kept_24_hours_and_an_expired_record_no_longer_replays(api: Handler, token, resources: Resources) -> None:
    # Given a payout created with a key
    import time

    first = post(api, token("alice"), key="aging")[2]
    dynamodb = resources.client("dynamodb")
    table = resources.ref("Table")
    record = next(i for i in dynamodb.scan(TableName=table)["Items"] if i["pk"]["S"].startswith("IDEM#"))
    # Then its record lives at least 24 hours (TTL attribute) and does not hold the raw key
    assert int(record["expires_at"]["N"]) >= time.time() + 24 * 3600 - 5
    assert "aging" not in json.dumps(record)
    # When the record has expired but TTL has not deleted it yet, and the key comes back
    dynamodb.update_item(
        TableName=table,
        Key={"pk": record["pk"], "sk": record["sk"]},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )
    status, headers, second = post(api, token("alice"), key="aging")
    # Then it is a new payout, not a replay
    assert status == 201
    assert "idempotent-replayed" not in headers
    assert second["id"] != first["id"]


def test_same_key_same_body_replays_the_original_answer(api: Handler, token, resources: Resources) -> None:
    # Given a payout created with a key
    first = post(api, token("alice"))
    # When the same request is sent again
    second = post(api, token("alice"))
    # Then the answer is the original status and body, marked as replayed, and no second payout exists
    assert (second[0], second[2]) == (first[0], first[2])
    assert second[1]["idempotent-replayed"] == "true"
    assert len([k for k in item_keys(resources) if k.startswith("PAYOUT#")]) == 1
    assert len(queued(resources)) == 1


def test_same_key_different_body_is_rejected_and_writes_nothing(api: Handler, token, resources: Resources) -> None:
    # Given a payout created with a key
    post(api, token("alice"))
    before = item_keys(resources)
    # When the key is reused with another amount
    status, headers, body = post(api, token("alice"), {**VALID_BODY, "amount": 999})
    # Then 422 problem, and the table is unchanged
    assert status == 422
    assert headers["content-type"] == "application/problem+json"
    assert body["status"] == 422
    assert item_keys(resources) == before


def test_another_user_reusing_a_key_gets_their_own_payout(api: Handler, token) -> None:
    # Given alice used a key
    alice = post(api, token("alice"))[2]
    # When bob sends the same key and body
    status, headers, bob = post(api, token("bob"))
    # Then bob gets a new payout of his own, not alice's answer
    assert status == 201
    assert "idempotent-replayed" not in headers
    assert bob["id"] != alice["id"]
    assert get(api, token("bob"), f"/payouts/{alice['id']}")[0] == 404


def test_thirty_two_concurrent_creates_with_one_key_make_one_payout(api: Handler, token, resources: Resources, monkeypatch) -> None:
    # Given one user and one key, and a table whose transactions are isolated as DynamoDB's are
    bearer = token("alice")
    serialise_moto_transactions(monkeypatch)
    results: list[tuple[int, dict[str, str], Any]] = []
    lock = threading.Lock()
    start = threading.Barrier(32)

    def create() -> None:
        start.wait()
        outcome = post(api, bearer, key="concurrent-key")
        with lock:
            results.append(outcome)

    # When 32 requests race
    threads = [threading.Thread(target=create) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then all 32 get 201 with identical bodies, one of them new and 31 replays, and one payout exists
    assert len(results) == 32
    assert {status for status, _, _ in results} == {201}
    assert len({json.dumps(body, sort_keys=True) for _, _, body in results}) == 1
    assert sum(1 for _, headers, _ in results if headers.get("idempotent-replayed") == "true") == 31
    assert len([k for k in item_keys(resources) if k.startswith("PAYOUT#")]) == 1
    assert len(queued(resources)) == 1


def test_a_transaction_conflict_is_retried_and_the_payout_is_created(api: Handler, token, resources: Resources, monkeypatch) -> None:
    # Given DynamoDB cancels the first transaction with TransactionConflict (moto never does)
    from payrail import aws

    bearer = token("alice")

    client = aws.client("dynamodb")
    real = client.transact_write_items
    attempts: list[int] = []

    def conflict_once(**kwargs: Any) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}, {"Code": "None"}, {"Code": "None"}],
                },
                "TransactWriteItems",
            )
        return real(**kwargs)

    monkeypatch.setattr(client, "transact_write_items", conflict_once)
    # When a payout is created
    status, _, body = post(api, bearer)
    # Then the transaction was retried and the payout exists
    assert status == 201
    assert len(attempts) == 2
    assert f"PAYOUT#{body['id']}" in item_keys(resources)


def test_the_rate_limit_answers_429_with_retry_after_and_writes_nothing(resources: Resources, handler_of, monkeypatch) -> None:
    # Given a limit of 2 payouts a minute
    resources.functions["PayoutsApiFunction"].environment["PAYOUT_RATE_LIMIT_PER_MINUTE"] = "2"
    api = handler_of("PayoutsApiFunction")
    bearer = funded_token(resources, "alice")
    # The limit counts per fixed minute window: the three creates must fall in one, so start
    # with at least 20 s of the current window left (a loaded machine takes seconds per create)
    from payrail.db.payouts import RATE_WINDOW_SECONDS

    left = RATE_WINDOW_SECONDS - time.time() % RATE_WINDOW_SECONDS
    if left < 20:
        time.sleep(left + 0.1)
    window = int(time.time() // RATE_WINDOW_SECONDS)
    assert post(api, bearer, key="a")[0] == 201
    assert post(api, bearer, key="b")[0] == 201
    before = item_keys(resources)
    # When a third payout is asked for within the minute
    status, headers, body = post(api, bearer, key="c")
    # Then 429 with Retry-After, nothing written; a replay of an earlier key still answers
    assert int(time.time() // RATE_WINDOW_SECONDS) == window, "the creates outlasted the window they started in"
    assert status == 429
    assert body["type"].endswith("rate-limited")
    assert 1 <= int(headers["retry-after"]) <= 60
    assert item_keys(resources) == before
    assert post(api, bearer, key="a")[1]["idempotent-replayed"] == "true"


BAD_BODIES = {
    "float amount": {**VALID_BODY, "amount": 125.5},
    "whole float amount": {**VALID_BODY, "amount": 12550.0},
    "string amount": {**VALID_BODY, "amount": "12550"},
    "zero amount": {**VALID_BODY, "amount": 0},
    "negative amount": {**VALID_BODY, "amount": -100},
    "huge amount": {**VALID_BODY, "amount": 10**15},
    "boolean amount": {**VALID_BODY, "amount": True},
    "unknown currency": {**VALID_BODY, "currency": "XYZ"},
    "lowercase currency": {**VALID_BODY, "currency": "zar"},
    "over-long name": {**VALID_BODY, "beneficiary": {**VALID_BODY["beneficiary"], "name": "x" * 141}},
    "control character in name": {**VALID_BODY, "beneficiary": {**VALID_BODY["beneficiary"], "name": "Thandi\x00Nkosi"}},
    "newline in reference": {**VALID_BODY, "reference": "Invoice\n1042"},
    "over-long reference": {**VALID_BODY, "reference": "r" * 141},
    "bad account number": {**VALID_BODY, "beneficiary": {**VALID_BODY["beneficiary"], "account_number": "12 34"}},
    "missing beneficiary": {k: v for k, v in VALID_BODY.items() if k != "beneficiary"},
    "unknown field": {**VALID_BODY, "fee": 1},
    "array body": [VALID_BODY],
}


@pytest.fixture(scope="module")
def shared(moto_endpoint: str):
    """One provisioned stack for the read-only bad-input cases (each asserts nothing is written)."""
    from tests.support import function_environment_of, load_function

    resources = Resources(moto_endpoint)
    bearer = funded_token(resources, "alice")
    with function_environment_of(resources, "PayoutsApiFunction"):
        yield resources, load_function(resources, "PayoutsApiFunction").lambda_handler, bearer


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_bodies_are_400_problems_and_write_nothing(shared, case: str) -> None:
    resources, api, bearer = shared
    before = item_keys(resources)
    status, headers, body = post(api, bearer, BAD_BODIES[case], key=f"key-{case.replace(' ', '-')}")
    assert status == 400, body
    assert headers["content-type"] == "application/problem+json"
    # Refused for the body itself (a valid key is sent, so nothing else can be the reason).
    assert body["errors"]
    assert {error["in"] for error in body["errors"]} == {"body"}, body
    assert item_keys(resources) == before


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data", "application/x-www-form-urlencoded", "application/xml"])
def test_a_body_that_is_not_json_is_a_415_problem_and_writes_nothing(shared, content_type: str) -> None:
    resources, api, bearer = shared
    before = item_keys(resources)
    status, headers, body = post(api, bearer, key=f"key-415-{content_type}", **{"content-type": content_type})
    assert (status, headers["content-type"], body["status"]) == (415, "application/problem+json", 415)
    assert item_keys(resources) == before


@pytest.mark.parametrize(
    ("case", "raw_body", "key"),
    [
        ("missing body", None, "k1"),
        ("non-JSON body", "amount=12550&currency=ZAR", "k2"),
        ("truncated JSON", '{"amount": 12550, ', "k3"),
        ("missing key", json.dumps(VALID_BODY), None),
        ("empty key", json.dumps(VALID_BODY), ""),
        ("over-long key", json.dumps(VALID_BODY), "k" * 256),
        ("key with a space", json.dumps(VALID_BODY), "my key"),
        ("key with non-ASCII", json.dumps(VALID_BODY), "clé-1"),
    ],
)
def test_malformed_requests_are_400_problems_and_write_nothing(shared, case: str, raw_body: str | None, key: str | None) -> None:
    resources, api, bearer = shared
    before = item_keys(resources)
    headers = {"authorization": f"Bearer {bearer}"}
    if key is not None:
        headers["idempotency-key"] = key
    event = http_event("POST", "/payouts", raw_body=raw_body, headers=headers)
    if raw_body is None:
        event.pop("body", None)
    status, response_headers, body = call(api, event)
    assert status == 400, body
    assert response_headers["content-type"] == "application/problem+json"
    assert item_keys(resources) == before


def test_a_key_of_255_visible_characters_is_accepted(shared) -> None:
    _, api, bearer = shared
    assert post(api, bearer, key="~" * 255)[0] == 201


def test_no_token_is_401_and_writes_nothing(shared) -> None:
    resources, api, _ = shared
    before = item_keys(resources)
    status, _, _ = call(api, http_event("POST", "/payouts", body=VALID_BODY, headers={"idempotency-key": "anon"}))
    assert status == 401
    assert item_keys(resources) == before


def test_another_users_payout_is_404_and_unknown_ids_too(shared) -> None:
    resources, api, bearer = shared
    created = post(api, bearer, key="mine")[2]
    intruder = mint_token(resources, "mallory")
    assert get(api, intruder, f"/payouts/{created['id']}")[0] == 404
    assert get(api, bearer, "/payouts/po_doesnotexist")[0] == 404
    assert get(api, bearer, f"/payouts/{created['id']}")[0] == 200


def test_listing_is_newest_first_paginated_and_only_the_callers(resources: Resources, handler_of) -> None:
    # Given alice has five payouts and bob one
    api = handler_of("PayoutsApiFunction")
    alice, bob = funded_token(resources, "alice"), funded_token(resources, "bob")
    created = [post(api, alice, key=f"list-{i}")[2]["id"] for i in range(5)]
    post(api, bob, key="list-bob")
    # When alice pages through two at a time
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        status, _, page = get(api, alice, query={"limit": "2", **({"cursor": cursor} if cursor else {})})
        assert status == 200
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    # Then she sees exactly her payouts, newest first
    assert seen == list(reversed(created))
    # And a cursor cannot be bent into another user's partition
    _, _, first = get(api, alice, query={"limit": "1"})
    assert get(api, bob, query={"cursor": first["next_cursor"]})[0] == 400
    assert get(api, alice, query={"limit": "0"})[0] == 400


def test_a_percent_encoded_id_in_the_path_is_read_decoded(api: Handler, token) -> None:
    # Given a payout (ids look like po_<hex>)
    created = post(api, token("alice"), key="encoded-path")[2]
    # When a client percent-encodes the underscore in its URL, as some HTTP libraries do
    encoded = created["id"].replace("_", "%5F")
    status, _, body = get(api, token("alice"), f"/payouts/{encoded}")
    # Then it is the same payout, not an invalid or unknown id
    assert (status, body["id"]) == (200, created["id"])


def test_an_id_with_characters_no_route_takes_is_a_404_problem(api: Handler, token) -> None:
    # API Gateway routes "/payouts/%C2%84" here; once decoded, no route of the function takes it.
    status, headers, body = get(api, token("alice"), "/payouts/%C2%84")
    assert (status, headers["content-type"], body["status"]) == (404, "application/problem+json", 404)
