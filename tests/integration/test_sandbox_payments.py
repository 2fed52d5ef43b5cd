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


def test_the_same_idempotency_key_yields_the_same_provider_payout(sandbox: Any) -> None:
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
    }
    assert request(sandbox, "PUT", "/faults", {"error_rate": 1.5})[0] == 400
    assert request(sandbox, "PUT", "/faults", {"rate_limit_rate": 1.0})[0] == 200
    # Every request is now rate limited, with Retry-After, and nothing is recorded
    status, headers, _ = request(sandbox, "POST", "/v1/payouts", VALID_BODY, {"idempotency-key": "po_2"})
    assert (status, headers["retry-after"]) == (429, "1")
    assert request(sandbox, "GET", "/v1/payouts")[2]["items"] == []
