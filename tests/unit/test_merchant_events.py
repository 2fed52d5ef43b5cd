"""Merchant events from stream records, their signatures and their retry timing: pure logic."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
import tomllib
from typing import Any

import pytest
from payrail.db import keys, serialize
from payrail.webhooks.merchant_events import EVENT_TYPES, events_of
from payrail.webhooks.sending import USER_AGENT, VERSION, new_secret, next_wait, signed_headers
from payrail.webhooks.signatures import SignatureRejected, secret_bytes, verify_standard
from standardwebhooks import Webhook, WebhookVerificationError

from tests.merchant_webhooks_support import stream_record
from tests.support import ROOT

PAYOUT: dict[str, Any] = {
    **keys.payout("po_1"),
    "gsi1pk": keys.user_payouts_index("user-1"),
    "gsi1sk": "2026-01-01T00:00:00.000000Z#po_1",
    "id": "po_1",
    "user_id": "user-1",
    "status": "pending",
    "amount": 12550,
    "currency": "ZAR",
    "beneficiary": {"name": "Thandi Nkosi", "account_number": "62001234567", "bank_code": "250655"},
    "reference": "Invoice 1042",
    "created_at": "2026-01-01T00:00:00.000000Z",
    "updated_at": "2026-01-01T00:00:00.000000Z",
    "version": 1,
}


def image(**changes: Any) -> dict[str, Any]:
    return serialize({**PAYOUT, **changes})


def test_an_inserted_payout_is_payout_created_with_its_public_view_and_version() -> None:
    [event] = events_of(stream_record("INSERT", image()))
    assert event.type == "payout.created"
    assert event.user_id == "user-1"
    assert event.object["id"] == "po_1"
    assert event.object["version"] == 1
    assert event.object["amount_decimal"] == "125.50"
    assert "user_id" not in event.object
    assert "gsi1pk" not in event.object
    body = json.loads(event.body())
    assert body == {"id": event.id, "type": "payout.created", "created_at": PAYOUT["created_at"], "data": {"object": event.object}}


def test_the_same_change_always_has_the_same_event_id() -> None:
    # Given the stream delivering one record twice (and a retried function reading it again)
    first = events_of(stream_record("INSERT", image()))
    second = events_of(stream_record("INSERT", image()))
    assert first[0].id == second[0].id
    assert first[0].id.startswith("evt_")
    assert first[0].body() == second[0].body()


def test_a_status_change_is_one_event_of_the_new_status_and_other_changes_none() -> None:
    moved = events_of(stream_record("MODIFY", image(status="submitted", version=2, updated_at="t2"), image()))
    assert [(e.type, e.object["version"], e.created_at) for e in moved] == [("payout.submitted", 2, "t2")]
    # A worker noting it received the payout's message changes no status: no event.
    assert events_of(stream_record("MODIFY", image(received_at="t3"), image())) == []
    assert events_of(stream_record("REMOVE", None, image())) == []
    # Every status has its own id, so submitted and paid never collide.
    paid = events_of(stream_record("MODIFY", image(status="paid", version=4), image(status="processing", version=3)))
    assert paid[0].type == "payout.paid"
    assert paid[0].id != moved[0].id


def test_items_other_than_payouts_and_connections_mean_nothing() -> None:
    for pk, sk in [
        ("IDEM#u#k", "IDEM"),
        ("OUTBOX#1", "2026#po_1"),
        ("BALANCE#u#ZAR", "BALANCE"),
        ("CONN#c1", "TXN#t1"),
        ("WHEVT#e", "EVENT"),
    ]:
        assert events_of(stream_record("INSERT", serialize({"pk": pk, "sk": sk, "user_id": "u"}))) == []


def test_a_finished_bank_sync_is_bank_connection_synced_with_its_summary() -> None:
    summary = {"inserted": 3, "updated": 1, "unchanged": 0, "removed": 0, "pages": 1, "written": 4, "finished_at": "t9", "status": "ok"}
    connection = {**keys.connection("conn_1"), "connection_id": "conn_1", "user_id": "user-1", "created_at": "t0", "sync_generation": 2}
    old = serialize({**connection, "lease_owner": "run-1", "sync_generation": 1})
    new = serialize({**connection, "last_sync": summary})
    [event] = events_of(stream_record("MODIFY", new, old))
    assert event.type == "bank_connection.synced"
    assert event.user_id == "user-1"
    assert event.object["last_sync"]["inserted"] == 3
    assert event.object["version"] == 2
    assert event.object["id"] == "conn_1"
    # Taking the lease for the next run (same summary) is no new event.
    assert events_of(stream_record("MODIFY", serialize({**connection, "last_sync": summary, "lease_owner": "r2"}), new)) == []


def test_signatures_follow_standard_webhooks_and_either_secret_verifies_during_a_rotation() -> None:
    new, old = new_secret(), new_secret()
    assert new.startswith("whsec_")
    assert len(base64.b64decode(new[len("whsec_") :])) >= 24
    body = b'{"id":"evt_1"}'
    headers = signed_headers("evt_1", 1_700_000_000, body, [new, old])
    # The specification's own computation: base64 HMAC-SHA256 of "id.timestamp.body" keyed by the
    # decoded part of the secret, one "v1,<sig>" entry per secret, space-separated.
    expected = [
        "v1," + base64.b64encode(hmac.new(secret_bytes(s), b"evt_1.1700000000." + body, hashlib.sha256).digest()).decode()
        for s in (new, old)
    ]
    assert headers["webhook-signature"].split(" ") == expected
    assert headers["webhook-id"] == "evt_1"
    assert headers["webhook-timestamp"] == "1700000000"
    assert headers["user-agent"] == USER_AGENT
    for secret in (new, old):
        assert verify_standard(headers, body, [secret], now=1_700_000_000) == "evt_1"
    with pytest.raises(SignatureRejected):
        verify_standard(headers, body, [new_secret()], now=1_700_000_000)
    with pytest.raises(SignatureRejected):
        verify_standard(headers, body + b" ", [new], now=1_700_000_000)
    # The official library (which checks the timestamp against its own clock) verifies with either
    # secret alone and refuses any other secret or body.
    current = signed_headers("evt_1", int(time.time()), body, [new, old])
    for secret in (new, old):
        assert Webhook(secret).verify(body, current) == {"id": "evt_1"}
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, current)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body + b" ", current)


def test_the_user_agent_names_the_products_version() -> None:
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] == VERSION


def test_each_wait_has_ten_percent_jitter_and_the_schedule_ends() -> None:
    schedule = [0, 5, 300, 36000]
    rand = random.Random(7)
    assert next_wait(schedule, 0, rand) == 0
    waits = [next_wait(schedule, 2, rand) for _ in range(200)]
    assert all(270 <= wait <= 330 for wait in waits if wait is not None)
    assert len({round(w or 0, 3) for w in waits}) > 100  # jittered, not one value
    assert next_wait(schedule, 4, rand) is None


def test_event_types_are_the_documented_ones() -> None:
    assert EVENT_TYPES == (
        "payout.created",
        "payout.submitted",
        "payout.processing",
        "payout.paid",
        "payout.failed",
        "bank_connection.synced",
    )
