"""Issue 19's money and payout attacks, replayed over HTTP on the running local stack: amounts in
the wrong minor unit (2), a provider credential outage (7), invisible characters in names (8)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningStack
from tests.e2e.test_payment_webhooks import provider_payout_of
from tests.e2e.test_payouts_e2e import HANDED_OFF, access_token, status_of
from tests.payouts_support import VALID_BODY
from tests.support import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def user(stack: RunningStack, api: httpx.Client, fund) -> Iterator[dict[str, str]]:
    auth = {"authorization": f"Bearer {access_token(stack, f'hard-{uuid.uuid4().hex[:8]}')}"}
    fund(auth, {"ZAR": 10**8, "UGX": 10**8, "USD": 10**8})
    yield auth
    api.put("/sandbox/payments/faults", json={})  # leave the shared stack's provider healthy


def create(api: httpx.Client, user: dict[str, str], **changes: Any) -> httpx.Response:
    return api.post("/payouts", json={**VALID_BODY, **changes}, headers={**user, "idempotency-key": f"hard-{uuid.uuid4()}"})


# ---------------------------------------------------------------- item 2: ISO 4217 minor units
@pytest.mark.parametrize(("amount", "currency", "decimal"), [(12550, "UGX", "12550"), (12550, "ZAR", "125.50"), (7, "USD", "0.07")])
def test_amounts_are_in_the_currencys_iso_4217_minor_unit_everywhere(
    api: httpx.Client, user: dict[str, str], amount: int, currency: str, decimal: str
) -> None:
    # When a client pays 12550 UGX (UGX has no minor unit: 12,550 shillings)
    created = create(api, user, amount=amount, currency=currency)
    # Then the payout says so in major units next to the integer amount, when created, read and listed
    assert created.status_code == 201, created.text
    assert (created.json()["amount"], created.json()["amount_decimal"]) == (amount, decimal)
    payout_id = created.json()["id"]
    assert status_of(api, user, payout_id)["amount_decimal"] == decimal
    listed = {p["id"]: p for p in api.get("/payouts", headers=user).json()["items"]}
    assert listed[payout_id]["amount_decimal"] == decimal
    # And the provider receives the same integer in ISO 4217 minor units, with its major-unit amount
    received = wait_for(lambda: provider_payout_of(api, payout_id), timeout=30)
    assert (received["amount"], received["currency"], received["amount_decimal"]) == (amount, currency, decimal)


def test_amount_decimal_is_an_answer_not_an_input(api: httpx.Client, user: dict[str, str]) -> None:
    # A client that sends amount_decimal (say, "125.50" UGX, finer than UGX allows) is told so
    response = create(api, user, currency="UGX", amount_decimal="125.50")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["amount_decimal"]


# ---------------------------------------------------------------- item 8: invisible characters
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("beneficiary.name", "Thandi \u202eikosN"),  # RIGHT-TO-LEFT OVERRIDE: displays as another name
        ("beneficiary.name", "Thandi\u200bNkosi"),  # ZERO WIDTH SPACE
        ("beneficiary.name", "\ufeffThandi Nkosi"),  # BYTE ORDER MARK (ZERO WIDTH NO-BREAK SPACE)
        ("reference", "Invoice\u2066 1042"),  # LEFT-TO-RIGHT ISOLATE
        ("reference", "Invoice\u00ad1042"),  # SOFT HYPHEN
        ("reference", "Invoice \U000e0031042"),  # TAG DIGIT ONE (outside the BMP)
        ("reference", "Invoice\x071042"),  # a control character (Cc), refused before too
    ],
)
def test_invisible_format_characters_are_a_400_naming_the_field(api: httpx.Client, user: dict[str, str], field: str, value: str) -> None:
    body: dict[str, Any] = {**VALID_BODY, "beneficiary": dict(VALID_BODY["beneficiary"])}
    if field == "reference":
        body["reference"] = value
    else:
        body["beneficiary"]["name"] = value
    response = api.post("/payouts", json=body, headers={**user, "idempotency-key": f"hard-{uuid.uuid4()}"})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert api.get("/payouts", headers=user).json()["items"] == []


# ---------------------------------------------------------------- item 7: provider credential outage
def breaker_item(stack: RunningStack) -> dict[str, Any]:
    return (
        stack.client("dynamodb")
        .get_item(TableName=stack.physical("Table"), Key={"pk": {"S": "CIRCUIT#payment-provider"}, "sk": {"S": "CIRCUIT"}})
        .get("Item", {})
    )


def breaker_failures(stack: RunningStack) -> int:
    """Failures the breaker holds in its sliding window (attributes f<bucket>, one per window)."""
    return sum(int(value["N"]) for name, value in breaker_item(stack).items() if name[0] == "f" and name[1:].isdigit())


def test_a_revoked_provider_key_leaves_payouts_unfinished_and_retried_until_it_is_fixed(
    stack: RunningStack, api: httpx.Client, user: dict[str, str]
) -> None:
    # Given the provider refuses every request with 401 (a revoked API key), with its own error text
    assert api.put("/sandbox/payments/faults", json={"forced_status": 401}).json()["forced_status"] == 401
    # When a payout is created
    created = create(api, user)
    assert created.status_code == 201
    payout_id = created.json()["id"]
    # Then the worker keeps trying it, and each refusal counts as a failure towards the breaker
    wait_for(lambda: breaker_failures(stack) >= 2, timeout=40, interval=0.5)
    payout = status_of(api, user, payout_id)
    assert payout["status"] == "pending"
    assert payout.get("failure_reason") is None
    # And once the key is fixed, the next retry submits it
    api.put("/sandbox/payments/faults", json={})
    wait_for(lambda: status_of(api, user, payout_id)["status"] in HANDED_OFF, timeout=90, interval=1)
    # The refusals stay counted until their window passes; the breaker is closed, calls go through
    assert breaker_item(stack).get("state", {"S": "closed"})["S"] == "closed"


def test_a_documented_rejection_fails_the_payout_with_a_stable_code(api: httpx.Client, user: dict[str, str]) -> None:
    # Given a payout to an account the provider documents as closed (numbers starting 0000)
    created = create(api, user, beneficiary={**VALID_BODY["beneficiary"], "account_number": "00001111"})
    payout_id = created.json()["id"]
    # Then it fails with the project's own code and words, not the provider's text
    failed = wait_for(lambda: (p := status_of(api, user, payout_id))["status"] == "failed" and p, timeout=30)
    assert failed["failure_reason"] == "beneficiary_account_closed: The beneficiary's account is closed."
