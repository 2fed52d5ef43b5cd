"""The sandbox payment provider's own contract: idempotency, reads, listing and fault settings."""

from __future__ import annotations

from typing import Any

import pytest

from tests.payouts_support import VALID_BODY, call, http_event

ROUTE = "/sandbox/{proxy+}"


def request(
    sandbox: Any, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, query: dict[str, str] | None = None
):
    return call(sandbox, http_event(method, "/sandbox/payments" + path, body=body, headers=headers, query=query, route=ROUTE))


@pytest.fixture
def sandbox(handler_of) -> Any:
    return handler_of("SandboxFunction")


def webhooks_due_in(sandbox: Any, seconds: int) -> None:
    """The provider emits a payout's events ``seconds`` (and twice that) after accepting it."""
    config = {"enabled": True, "delay_seconds": seconds, "failure_rate": 0, "scheme": "standard"}
    assert request(sandbox, "PUT", "/webhooks", config)[0] == 200


def test_the_same_idempotency_key_yields_the_same_provider_payout(sandbox: Any) -> None:
    webhooks_due_in(sandbox, 300)  # the payout stays "accepted" while this test reads it
    # Given a payout accepted under a key
    first = request(sandbox, "POST", "/v1/payouts", VALID_BODY, {"idempotency-key": "po_1"})
    # When the same request comes again, and then the key with another body
    again = request(sandbox, "POST", "/v1/payouts", VALID_BODY, {"idempotency-key": "po_1"})
    other = request(sandbox, "POST", "/v1/payouts", {**VALID_BODY, "amount": 1}, {"idempotency-key": "po_1"})
    # Then the first is 201, the repeat 200 with the same payout, the other body 422
    assert (first[0], again[0], other[0]) == (201, 200, 422)
    assert again[2] == first[2]
    assert first[2]["status"] == "accepted"
    # And the provider holds exactly one payout, readable by id and listed with its key
    assert request(sandbox, "GET", f"/v1/payouts/{first[2]['id']}")[2] == first[2]
    listing = request(sandbox, "GET", "/v1/payouts")[2]
    assert [(p["id"], p["idempotency_key"]) for p in listing["items"]] == [(first[2]["id"], "po_1")]


def test_a_missing_key_is_400_and_an_unknown_payout_404(sandbox: Any) -> None:
    assert request(sandbox, "POST", "/v1/payouts", VALID_BODY)[0] == 400
    assert request(sandbox, "GET", "/v1/payouts/pp_nothing")[0] == 404
    assert request(sandbox, "GET", "/v1/payouts")[2]["items"] == []


def test_faults_default_to_zero_are_validated_and_persist(sandbox: Any) -> None:
    assert request(sandbox, "GET", "/faults")[2] == {
        "error_rate": 0,
        "rate_limit_rate": 0,
        "timeout_rate": 0,
        "latency_ms": 0,
        "timeout_after_accept_share": 0.5,
        "forced_status": None,
    }
    assert request(sandbox, "PUT", "/faults", {"error_rate": 1.5})[0] == 400
    assert request(sandbox, "PUT", "/faults", {"forced_status": 200})[0] == 400
    assert request(sandbox, "PUT", "/faults", {"rate_limit_rate": 1.0})[0] == 200
    # Every request is now rate limited, with Retry-After, and nothing is recorded
    status, headers, _ = request(sandbox, "POST", "/v1/payouts", VALID_BODY, {"idempotency-key": "po_2"})
    assert (status, headers["retry-after"]) == (429, "1")
    assert request(sandbox, "GET", "/v1/payouts")[2]["items"] == []


def test_a_payout_moves_on_when_its_events_are_due_whether_or_not_a_webhook_got_through(sandbox: Any) -> None:
    # Given two payouts, one whose events are due at once and one whose events are far off
    webhooks_due_in(sandbox, 0)
    due = request(sandbox, "POST", "/v1/payouts", VALID_BODY, {"idempotency-key": "po_due"})[2]
    webhooks_due_in(sandbox, 300)
    later = request(sandbox, "POST", "/v1/payouts", VALID_BODY, {"idempotency-key": "po_later"})[2]
    # When they are read, with no webhook sender ever run
    # Then the first has settled, as a provider's payout does, and the second is still accepted
    assert request(sandbox, "GET", f"/v1/payouts/{due['id']}")[2]["status"] == "paid"
    assert request(sandbox, "GET", f"/v1/payouts/{later['id']}")[2]["status"] == "accepted"


def test_a_replay_schedules_the_events_a_request_that_died_after_accepting_did_not(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from payrail_sandbox import webhooks

    webhooks_due_in(sandbox, 300)

    def dies(settings: Any, payout: dict[str, Any]) -> list[str]:
        raise RuntimeError("the invocation ended here")

    # Given a first request that recorded the payout and died before scheduling its events
    with monkeypatch.context() as patch:
        patch.setattr(webhooks, "schedule_payout_events", dies)
        assert request(sandbox, "POST", "/v1/payouts", VALID_BODY, {"idempotency-key": "po_died"})[0] == 500
    # When the caller retries with the same key, twice
    again = request(sandbox, "POST", "/v1/payouts", VALID_BODY, {"idempotency-key": "po_died"})
    third = request(sandbox, "POST", "/v1/payouts", VALID_BODY, {"idempotency-key": "po_died"})
    # Then the first retry scheduled the payout's two events and the second scheduled none
    assert (again[0], third[0]) == (200, 200)
    events = request(sandbox, "GET", f"/v1/payouts/{again[2]['id']}/events")[2]["items"]
    assert sorted(event["type"] for event in events) == ["payout.paid", "payout.processing"]


def test_a_forced_status_answers_every_payout_in_the_providers_own_words_and_records_nothing(sandbox: Any) -> None:
    # Given the fault that stands for a revoked API key
    assert request(sandbox, "PUT", "/faults", {"forced_status": 401})[2]["forced_status"] == 401
    # Then every payout request is refused with 401 and the provider's text, and nothing is recorded
    status, _, body = request(sandbox, "POST", "/v1/payouts", VALID_BODY, {"idempotency-key": "po_revoked"})
    assert (status, body["detail"]) == (401, "Invalid API key provided: sk_sandbox_****")
    assert request(sandbox, "GET", "/v1/payouts")[2]["items"] == []
    # And clearing the faults lets payouts through again
    request(sandbox, "PUT", "/faults", {})
    assert request(sandbox, "POST", "/v1/payouts", VALID_BODY, {"idempotency-key": "po_revoked"})[0] == 201


def test_amounts_are_checked_and_recorded_in_iso_4217_major_units(sandbox: Any) -> None:
    # A UGX amount is whole shillings; one whose decimal form assumes two digits is refused
    ugx = {**VALID_BODY, "amount": 12550, "currency": "UGX"}
    status, _, body = request(sandbox, "POST", "/v1/payouts", {**ugx, "amount_decimal": "125.50"}, {"idempotency-key": "po_ugx1"})
    assert (status, body["code"]) == (422, "amount_mismatch")
    status, _, body = request(sandbox, "POST", "/v1/payouts", {**ugx, "amount_decimal": "12550"}, {"idempotency-key": "po_ugx2"})
    assert (status, body["amount"], body["amount_decimal"]) == (201, 12550, "12550")
    # And a rejected account is refused with the documented code
    closed = {**VALID_BODY, "beneficiary": {**VALID_BODY["beneficiary"], "account_number": "00001111"}}
    status, _, body = request(sandbox, "POST", "/v1/payouts", closed, {"idempotency-key": "po_closed"})
    assert (status, body["code"]) == (422, "account_closed")
