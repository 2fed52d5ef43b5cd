"""Balances and the ledger, in-process on moto: the reserve in the payout's create transaction,
release and settlement exactly once, funding credited once, the listing and its validation."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from typing import Any

import pytest
from payrail.db import balances as ledger
from payrail.db import keys

from tests.payouts_support import (
    VALID_BODY,
    call,
    fund,
    funding_reference_of,
    http_event,
    item_keys,
    mint_token,
    serialise_moto_transactions,
)
from tests.support import LambdaContext, Resources, function_environment_of
from tests.webhooks_support import InProcess, event_body, funding_body, sqs_event

THOUSAND_RAND = 100_000  # 1,000.00 ZAR in minor units
HUNDRED_RAND = 10_000


@pytest.fixture
def api(resources: Resources) -> InProcess:
    resources.functions["PayoutsApiFunction"].environment["PAYOUT_RATE_LIMIT_PER_MINUTE"] = "1000"
    return InProcess(resources, "PayoutsApiFunction")


@pytest.fixture
def worker(resources: Resources) -> InProcess:
    return InProcess(resources, "PaymentEventsWorkerFunction")


def bearer(resources: Resources, user_id: str) -> dict[str, str]:
    return {"authorization": f"Bearer {mint_token(resources, user_id)}"}


def create(api: InProcess, auth: dict[str, str], key: str, amount: int = HUNDRED_RAND, currency: str = "ZAR", raw: bool = False):
    """POST /payouts; ``raw`` from threads that share one environment entered around them."""
    body = {**VALID_BODY, "amount": amount, "currency": currency}
    return call(api.raw if raw else api, http_event("POST", "/payouts", body=body, headers={**auth, "idempotency-key": key}))


def balances(api: InProcess, auth: dict[str, str]) -> dict[str, Any]:
    status, _, body = call(api, http_event("GET", "/balances", headers=auth))
    assert status == 200, body
    return dict(body)


def balance(api: InProcess, auth: dict[str, str], currency: str = "ZAR") -> dict[str, Any]:
    found = [item for item in balances(api, auth)["items"] if item["currency"] == currency]
    return found[0] if found else {"available": 0, "reserved": 0}


def ledger_of(api: InProcess, auth: dict[str, str], currency: str = "ZAR", **query: str) -> tuple[int, Any]:
    path = f"/balances/{currency}/ledger"
    event = http_event(
        "GET", path, headers=auth, query=query or None, route="/balances/{currency}/ledger", path_parameters={"currency": currency}
    )
    status, _, body = call(api, event)
    return status, body


def entries(api: InProcess, auth: dict[str, str], currency: str = "ZAR") -> list[dict[str, Any]]:
    status, body = ledger_of(api, auth, currency, limit="100")
    assert status == 200, body
    return list(body["items"])


def audited(resources: Resources, user_id: str, currency: str = "ZAR") -> ledger.AuditResult:
    with function_environment_of(resources, "PayoutsApiFunction"):
        return ledger.audit_balance(user_id, currency)


def deliver(worker: InProcess, *bodies: bytes) -> None:
    answer = worker(sqs_event(list(bodies)))
    assert answer["batchItemFailures"] == [], answer


def test_64_concurrent_creates_of_100_with_1000_available_make_exactly_ten_payouts(
    resources: Resources, api: InProcess, monkeypatch
) -> None:
    # Given 1,000.00 available, and a table whose transactions are isolated as DynamoDB's are
    fund(resources, "alice", THOUSAND_RAND)
    auth = bearer(resources, "alice")
    results: list[tuple[str, int, Any]] = []
    lock = threading.Lock()
    start = threading.Barrier(64)
    with api.environment():
        serialise_moto_transactions(monkeypatch)

        def one(n: int) -> None:
            start.wait()
            status, _, body = create(api, auth, f"race-{n}", raw=True)
            with lock:
                results.append((f"race-{n}", status, body))

        # When 64 creates of 100.00 with distinct keys race
        threads = [threading.Thread(target=one, args=(n,)) for n in range(64)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Replaying the ten keys that got through answers the same ten payouts
        created = {key: body for key, status, body in results if status == 201}
        replays = {key: create(api, auth, key) for key in created}
    # Then exactly ten are created and 54 refused as insufficient funds, naming what is available
    assert Counter(status for _, status, _ in results) == {201: 10, 422: 54}
    refused = [body for _, status, body in results if status == 422]
    assert {body["type"].rsplit(":", 1)[-1] for body in refused} == {"insufficient-funds"}
    assert all(body["currency"] == "ZAR" and 0 <= body["available"] < HUNDRED_RAND * 10 for body in refused)
    # And the balance is spent exactly: nothing available, 1,000.00 reserved, ten reserve entries
    assert (balance(api, auth)["available"], balance(api, auth)["reserved"]) == (0, THOUSAND_RAND)
    assert balance(api, auth)["reserved_decimal"] == "1000.00"
    reserves = [entry for entry in entries(api, auth) if entry["type"] == "reserve"]
    assert sorted(entry["payout_id"] for entry in reserves) == sorted(body["id"] for body in created.values())
    assert len([key for key in item_keys(resources) if key.startswith("PAYOUT#")]) == 10
    assert {key: (status, headers.get("idempotent-replayed"), body) for key, (status, headers, body) in replays.items()} == {
        key: (201, "true", body) for key, body in created.items()
    }
    assert audited(resources, "alice").verdict is ledger.AuditVerdict.BALANCED


def test_insufficient_funds_writes_nothing_and_the_same_key_works_once_funded(resources: Resources, api: InProcess) -> None:
    # Given a user who was never funded
    auth = bearer(resources, "carol")
    funding_reference_of(resources, "carol")
    before = item_keys(resources)
    # When they ask for a payout
    status, headers, body = create(api, auth, "first-key")
    # Then 422 insufficient-funds with 0 available, and nothing is written: no payout, no idempotency record, no rate count
    assert status == 422, body
    assert headers["content-type"] == "application/problem+json"
    assert body["type"].endswith("insufficient-funds")
    assert (body["available"], body["available_decimal"], body["currency"]) == (0, "0.00", "ZAR")
    assert item_keys(resources) == before
    # And with 50.00 available, 100.00 is still refused, naming the 50.00
    fund(resources, "carol", 5_000)
    before = item_keys(resources)
    status, _, body = create(api, auth, "first-key")
    assert (status, body["available"], body["available_decimal"]) == (422, 5_000, "50.00")
    assert item_keys(resources) == before
    # When the money arrives, the same key creates the payout
    fund(resources, "carol", HUNDRED_RAND)
    status, _, body = create(api, auth, "first-key")
    assert status == 201, body
    assert (balance(api, auth)["available"], balance(api, auth)["reserved"]) == (5_000, HUNDRED_RAND)


def test_a_failed_payout_is_released_once_however_its_events_are_delivered(resources: Resources, api: InProcess, worker: InProcess) -> None:
    # Given a funded user with a payout of 100.00 reserved
    fund(resources, "dave", THOUSAND_RAND)
    auth = bearer(resources, "dave")
    status, _, payout = create(api, auth, "to-fail")
    assert status == 201
    # When payout.failed comes three times (twice redelivered, once under another id), shuffled with payout.processing
    failed = event_body("payout.failed", payout["id"], failure_reason="account closed")
    processing = [event_body("payout.processing", payout["id"]) for _ in range(2)]
    bodies = [failed, failed, event_body("payout.failed", payout["id"]), *processing]
    random.Random(18).shuffle(bodies)
    for body in bodies:
        deliver(worker, body)
    # Then the amount is back in available once, with one release entry
    assert (balance(api, auth)["available"], balance(api, auth)["reserved"]) == (THOUSAND_RAND, 0)
    kinds = Counter(entry["type"] for entry in entries(api, auth))
    assert kinds == {"funding": 1, "reserve": 1, "release": 1}
    assert audited(resources, "dave").verdict is ledger.AuditVerdict.BALANCED


def test_a_paid_payout_settles_once(resources: Resources, api: InProcess, worker: InProcess) -> None:
    fund(resources, "erin", THOUSAND_RAND)
    auth = bearer(resources, "erin")
    status, _, payout = create(api, auth, "to-pay")
    assert status == 201
    paid = event_body("payout.paid", payout["id"])
    for body in [event_body("payout.processing", payout["id"]), paid, paid, event_body("payout.paid", payout["id"]), paid]:
        deliver(worker, body)
    # The amount has left reserved once; available keeps the rest
    assert (balance(api, auth)["available"], balance(api, auth)["reserved"]) == (THOUSAND_RAND - HUNDRED_RAND, 0)
    settles = [entry for entry in entries(api, auth) if entry["type"] == "settle"]
    assert [(entry["payout_id"], entry["amount"], entry["amount_decimal"]) for entry in settles] == [(payout["id"], HUNDRED_RAND, "100.00")]
    assert audited(resources, "erin").verdict is ledger.AuditVerdict.BALANCED


def test_funding_received_five_times_credits_once(resources: Resources, api: InProcess, worker: InProcess) -> None:
    reference = funding_reference_of(resources, "frank")
    body = funding_body(reference, 12_345, "UGX")
    deliver(worker, body, body)
    for _ in range(3):
        deliver(worker, body)
    auth = bearer(resources, "frank")
    assert balance(api, auth, "UGX") | {"updated_at": None} == {
        "currency": "UGX",
        "available": 12_345,
        "reserved": 0,
        "available_decimal": "12345",
        "reserved_decimal": "0",
        "updated_at": None,
    }
    assert [(e["type"], e["amount"], e["event_id"], e["payout_id"]) for e in entries(api, auth, "UGX")] == [
        ("funding", 12_345, json.loads(body)["id"], None)
    ]


def test_funding_for_an_unknown_reference_is_recorded_and_credits_no_one(resources: Resources, worker: InProcess) -> None:
    before = item_keys(resources)
    body = funding_body("PRFNOBODY", 500, "ZAR")
    deliver(worker, body)
    assert item_keys(resources) - before == {f"EVENT#{json.loads(body)['id']}"}


def test_a_malformed_funding_event_is_refused_by_the_receiver(resources: Resources, handler_of) -> None:
    from tests.webhooks_support import secrets_of, standard_headers, webhook_request

    receiver = handler_of("WebhookReceiveFunction")
    secret, _ = secrets_of(resources)
    for data in (
        {"funding_reference": "PRF1", "amount": 1.5, "currency": "ZAR"},
        {"funding_reference": "PRF1", "amount": 100, "currency": "XAU"},
    ):
        raw = json.dumps({"id": "evt_bad", "type": "funding.received", "created_at": "2026-01-01T00:00:00Z", "data": data}).encode()
        response = receiver(webhook_request(raw, standard_headers(secret, raw)), LambdaContext())
        assert response["statusCode"] == 400, response


def test_the_ledger_is_newest_first_paginated_and_only_the_callers(resources: Resources, api: InProcess) -> None:
    # Given alice funded twice and with two payouts, and bob funded once
    for amount in (THOUSAND_RAND, 2_000):
        fund(resources, "alice", amount)
    fund(resources, "bob", 777)
    alice, bob = bearer(resources, "alice"), bearer(resources, "bob")
    assert create(api, alice, "l-1")[0] == 201
    assert create(api, alice, "l-2", amount=2_000)[0] == 201
    # When alice pages through her ledger two at a time
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        status, page = ledger_of(api, alice, limit="2", **({"cursor": cursor} if cursor else {}))
        assert status == 200, page
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
        last_cursor = cursor
    # Then she sees her four entries, newest first
    assert [entry["type"] for entry in seen] == ["reserve", "reserve", "funding", "funding"]
    assert [entry["created_at"] for entry in seen] == sorted((entry["created_at"] for entry in seen), reverse=True)
    # And bob sees only his own: his balance, his one entry, nothing of hers even with her cursor
    assert [(item["currency"], item["available"]) for item in balances(api, bob)["items"]] == [("ZAR", 777)]
    assert [entry["amount"] for entry in entries(api, bob)] == [777]
    status, body = ledger_of(api, bob, cursor=last_cursor)
    assert status == 400, body
    assert balances(api, alice)["funding_reference"] != balances(api, bob)["funding_reference"]


@pytest.mark.parametrize(
    ("currency", "query"),
    [
        ("XYZ", {}),
        ("zar", {}),
        ("ZAR", {"limit": "0"}),
        ("ZAR", {"limit": "101"}),
        ("ZAR", {"limit": "ten"}),
        ("ZAR", {"cursor": "not+base64"}),
        ("ZAR", {"cursor": "eyJwayI6IngifQ"}),
    ],
)
def test_bad_ledger_requests_are_400_problems(resources: Resources, api: InProcess, currency: str, query: dict[str, str]) -> None:
    status, body = ledger_of(api, bearer(resources, "gina"), currency, **query)
    assert status == 400, body
    assert body["type"].endswith("validation-error")


def test_balances_need_a_signed_in_user(resources: Resources, api: InProcess) -> None:
    assert call(api, http_event("GET", "/balances"))[0] == 401
    assert ledger_of(api, {}, "ZAR")[0] == 401


def test_get_balances_records_the_funding_reference_until_the_user_has_a_balance_then_only_reads(
    resources: Resources, api: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded: list[str] = []
    register = ledger.register_funding_reference

    def counting_register(user_id: str) -> str:
        recorded.append(user_id)
        return register(user_id)

    monkeypatch.setattr(ledger, "register_funding_reference", counting_register)
    auth = bearer(resources, "user-fresh")
    # Unfunded: each answer records the reference (a conditional put, so once in the table)
    reference = balances(api, auth)["funding_reference"]
    assert recorded == ["user-fresh"]
    with function_environment_of(resources, "PayoutsApiFunction"):
        assert ledger.user_of_funding_reference(reference) == "user-fresh"
    # Funded (which needed that record): the same reference, and nothing written any more
    fund(resources, "user-fresh", HUNDRED_RAND)
    recorded.clear()
    for _ in range(3):
        shown = balances(api, auth)
        assert shown["funding_reference"] == reference
        assert shown["items"][0]["available"] == HUNDRED_RAND
    assert recorded == []


def test_a_funding_delivered_again_after_its_event_record_expired_still_credits_once(
    resources: Resources, api: InProcess, worker: InProcess
) -> None:
    # Given a funding credited, whose deduplication record has since expired (TTL deletes it)
    reference = funding_reference_of(resources, "hana")
    body = funding_body(reference, 4_000, "ZAR")
    deliver(worker, body)
    event_key = keys.webhook_event(json.loads(body)["id"])
    resources.client("dynamodb").delete_item(
        TableName=resources.ref("Table"), Key={name: {"S": value} for name, value in event_key.items()}
    )
    # When the provider delivers the same event again
    deliver(worker, body)
    # Then its ledger entry, which is never deleted, keeps it from being credited twice
    auth = bearer(resources, "hana")
    assert balance(api, auth)["available"] == 4_000
    assert [entry["type"] for entry in entries(api, auth)] == ["funding"]
