"""The sandbox payment provider, served under /sandbox/payments (dev stage and local only).

It behaves like a real payout API where it matters to the client: ``POST /v1/payouts`` honours
``Idempotency-Key`` (the same key always yields the same provider payout, by a conditional put,
so two racing requests cannot create two), and faults configured with ``PUT /faults`` are drawn
per request: 5xx errors, 429s with ``Retry-After``, extra latency, and timeouts that outlast the
client's timeout. By default half of the timeouts happen *after* the payout was accepted and recorded,
which is how real timeouts tempt a client into paying twice; the idempotency key must absorb it.

``GET /v1/payouts`` lists every payout received with its idempotency key, so tests can prove
that nothing was paid twice. State lives in the table under ``SANDBOX#payments#...``.

Amounts: ``amount`` is an integer in the currency's ISO 4217 minor units (UGX has none: 12550 is
12,550 shillings; ZAR has two: 12550 is R125.50; KWD three), exponents from ISO 4217's list (the
same ``payrail.domain.money`` the product uses). A request may also carry ``amount_decimal`` in
major units; when it does not match ``amount`` at that exponent the payout is refused (422,
``amount_mismatch``), so a client that assumes two digits for every currency is caught here. Every
payout recorded carries its ``amount_decimal``.

Business rejections, the only 4xx a client may treat as final: 422 with ``code`` in the problem
document. ``account_closed``: a beneficiary account number starting with ``0000``, so the
client's permanent-failure path can be exercised. Anything else (a 422 without a known code,
``idempotency_key_reused``, ``amount_mismatch``, or the 401, 403, 404... that the ``forced_status``
fault answers with, in the provider's own words) is not a statement about the payout.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from payrail import clock
from payrail.db import ConditionFailed, decode_cursor, encode_cursor
from payrail.domain import money
from payrail.errors import DependencyFailure, NotFound, PayrailError, RateLimited, Unprocessable
from payrail.http import json_response
from payrail.observability import logger
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from payrail_sandbox import settings as sandbox_settings
from payrail_sandbox import webhooks
from payrail_sandbox.settings import SandboxSettings
from payrail_sandbox.store import key
from payrail_sandbox.store import sandbox_table as table

router = APIGatewayHttpRouter()

PROVIDER = "payments"
TAGS = ["Sandbox payment provider"]
_PPM = 1_000_000  # rates are stored as integer parts per million: the table refuses floats
REJECTED_ACCOUNT_PREFIX = "0000"
# A "timeout" fault answers this long after its caller gave up waiting.
TIMEOUT_PAST_CALLER_SECONDS = 0.5


class SandboxServerError(DependencyFailure):
    status = 500
    slug = "sandbox-server-error"
    title = "The sandbox provider simulated a server error"


class SandboxUnavailable(DependencyFailure):
    slug = "sandbox-unavailable"
    title = "The sandbox provider simulated an outage"


class SandboxTimeout(DependencyFailure):
    status = 504
    slug = "sandbox-timeout"
    title = "The sandbox provider simulated a timeout"


class SandboxRefusal(PayrailError):
    """The ``forced_status`` fault: a refusal at any status, in the provider's own words."""

    slug = "sandbox-refused"
    title = "The sandbox provider refused the request"

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class SandboxFaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(default=0, ge=0, le=1, description="Share of requests answered 500/503")
    rate_limit_rate: float = Field(default=0, ge=0, le=1, description="Share answered 429 with Retry-After")
    timeout_rate: float = Field(default=0, ge=0, le=1, description="Share that sleep past the client's timeout")
    latency_ms: int = Field(default=0, ge=0, le=10_000, description="Added to every request")
    timeout_after_accept_share: float = Field(
        default=0.5, ge=0, le=1, description="Share of timeouts that happen after the payout was accepted and recorded"
    )
    forced_status: int | None = Field(
        default=None,
        ge=400,
        le=599,
        description="Answer every POST /v1/payouts with this status and the provider's own error text (401: a revoked API key)",
    )


class SandboxBeneficiary(BaseModel):
    name: str = Field(min_length=1, max_length=140)
    account_number: str = Field(min_length=1, max_length=34)
    bank_code: str = Field(min_length=1, max_length=11)


class SandboxPayoutRequest(BaseModel):
    amount: StrictInt = Field(gt=0, description="Integer ISO 4217 minor units of the currency")
    amount_decimal: str | None = Field(default=None, max_length=40, description="The same amount in major units, checked")
    currency: str = Field(min_length=3, max_length=3)
    beneficiary: SandboxBeneficiary
    reference: str = Field(default="", max_length=140)
    metadata: dict[str, str] = Field(default_factory=dict)


class SandboxPayout(BaseModel):
    id: str
    idempotency_key: str
    status: str
    amount: int
    amount_decimal: str | None = None
    currency: str
    beneficiary: SandboxBeneficiary
    reference: str
    metadata: dict[str, str]
    received_at: str
    failure_reason: str | None = None


class SandboxPayoutPage(BaseModel):
    items: list[SandboxPayout]
    next_cursor: str | None = None


def _faults_key() -> dict[str, str]:
    return {"pk": key(PROVIDER, "FAULTS"), "sk": "FAULTS"}


def _payout_key(provider_id: str) -> dict[str, str]:
    return {"pk": key(PROVIDER, "PAYOUT", provider_id), "sk": "PAYOUT"}


_LISTING = key(PROVIDER, "PAYOUTS")


def current_faults() -> SandboxFaults:
    item = table().get(_faults_key()) or {}
    return SandboxFaults(
        error_rate=int(item.get("error_ppm", 0)) / _PPM,
        rate_limit_rate=int(item.get("rate_limit_ppm", 0)) / _PPM,
        timeout_rate=int(item.get("timeout_ppm", 0)) / _PPM,
        latency_ms=int(item.get("latency_ms", 0)),
        timeout_after_accept_share=int(item.get("accepted_timeout_ppm", _PPM // 2)) / _PPM,
        forced_status=int(item["forced_status"]) if item.get("forced_status") else None,
    )


@router.put("/faults", summary="Set the sandbox payment provider's fault rates", tags=TAGS)
def put_faults(faults: SandboxFaults) -> Response[SandboxFaults]:
    table().put(
        {
            **_faults_key(),
            "error_ppm": round(faults.error_rate * _PPM),
            "rate_limit_ppm": round(faults.rate_limit_rate * _PPM),
            "timeout_ppm": round(faults.timeout_rate * _PPM),
            "latency_ms": faults.latency_ms,
            "accepted_timeout_ppm": round(faults.timeout_after_accept_share * _PPM),
            "forced_status": faults.forced_status or 0,
        }
    )
    return json_response(current_faults())


@router.get("/faults", summary="The sandbox payment provider's fault rates", tags=TAGS)
def get_faults() -> Response[SandboxFaults]:
    return json_response(current_faults())


def _public(item: dict[str, Any]) -> SandboxPayout:
    return SandboxPayout.model_validate({name: item.get(name) for name in SandboxPayout.model_fields})


def _accept(config: SandboxSettings, idempotency_key: str, request: SandboxPayoutRequest) -> tuple[int, SandboxPayout]:
    """Record the payout once per idempotency key: 201 the first time, 200 with the same payout
    after that, 422 when the key comes back with a different request or the account is closed."""
    try:
        amount_decimal = money.to_decimal_string(request.amount, request.currency)
    except money.UnknownCurrency as error:
        raise Unprocessable("The currency is not an ISO 4217 currency with a minor unit.", code="currency_unsupported") from error
    if request.amount_decimal is not None and request.amount_decimal != amount_decimal:
        raise Unprocessable(
            f"amount {request.amount} {request.currency} is {amount_decimal} in ISO 4217 major units, not {request.amount_decimal}.",
            code="amount_mismatch",
        )
    if request.beneficiary.account_number.startswith(REJECTED_ACCOUNT_PREFIX):
        raise Unprocessable("Account 0000… is closed at the beneficiary bank (sandbox).", code="account_closed")
    provider_id = "pp_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]
    fingerprint = hashlib.sha256(json.dumps(request.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
    received_at = clock.text()
    item = {
        **_payout_key(provider_id),
        "gsi1pk": _LISTING,
        "gsi1sk": f"{received_at}#{provider_id}",
        "id": provider_id,
        "idempotency_key": idempotency_key,
        "fingerprint": fingerprint,
        "status": "accepted",
        **request.model_dump(mode="json"),
        "amount_decimal": amount_decimal,
        "received_at": received_at,
    }
    try:
        table().put(item, "attribute_not_exists(pk)", return_on_failure=True)
    except ConditionFailed as existing:
        stored = existing.item or table().get(_payout_key(provider_id)) or {}
        if stored.get("fingerprint") != fingerprint:
            raise Unprocessable("This Idempotency-Key was used with a different request.", code="idempotency_key_reused") from existing
        if not stored.get("events_scheduled"):
            # The first request died between recording the payout and scheduling its events.
            after_payout_accepted(config, _public(stored))
        return 200, _public(stored)
    payout = _public(item)
    after_payout_accepted(config, payout)
    return 201, payout


def after_payout_accepted(config: SandboxSettings, payout: SandboxPayout) -> None:
    """The one place that runs when a provider payout has been accepted and recorded: it schedules
    the payout's webhooks (payout.processing, then payout.paid or payout.failed) and notes that it
    did. A replay of the key finds no note when the first request died in between, and schedules
    them then: a provider that accepted a payout settles it."""
    logger.info("sandbox payout accepted", extra={"provider_payout_id": payout.id})
    if webhooks.schedule_payout_events(config, payout.model_dump(mode="json")):
        table().update(_payout_key(payout.id), "SET events_scheduled = :yes", values={":yes": True}, returns="NONE")


@router.post(
    "/v1/payouts",
    summary="Sandbox provider: create a payout (idempotent per Idempotency-Key)",
    responses={200: {"description": "Same key again: the same payout"}, 201: {"description": "Accepted"}},
    tags=TAGS,
)
def create_provider_payout(
    body: SandboxPayoutRequest,
    idempotency_key: Annotated[str, Header(alias="idempotency-key", min_length=1, max_length=255)],
) -> Response[SandboxPayout]:
    config = sandbox_settings.of(router)
    faults = current_faults()
    if faults.latency_ms:
        time.sleep(faults.latency_ms / 1000)
    if faults.forced_status:
        # What a real provider says when the key was revoked or the URL is wrong: its own words.
        text = {401: "Invalid API key provided: sk_sandbox_****", 403: "This API key may not create payouts", 404: "Unknown route"}
        raise SandboxRefusal(faults.forced_status, text.get(faults.forced_status, "Request refused"))
    draw = random.random()
    if draw < faults.timeout_rate:
        # A timeout: by default half the time the payout is accepted first and only the answer is lost.
        if random.random() < faults.timeout_after_accept_share:
            _accept(config, idempotency_key, body)
        time.sleep(config.payments_caller_timeout_seconds + TIMEOUT_PAST_CALLER_SECONDS)
        raise SandboxTimeout()
    draw -= faults.timeout_rate
    if draw < faults.error_rate:
        raise random.choice((SandboxServerError, SandboxUnavailable))()
    draw -= faults.error_rate
    if draw < faults.rate_limit_rate:
        raise RateLimited("The sandbox provider simulated a rate limit.", retry_after=1)
    status, payout = _accept(config, idempotency_key, body)
    return json_response(payout, status=status)


@router.get("/v1/payouts/<provider_payout_id>", summary="Sandbox provider: one payout", tags=TAGS)
def get_provider_payout(provider_payout_id: Annotated[str, Path(max_length=64)]) -> Response[SandboxPayout]:
    webhooks.catch_up(provider_payout_id)
    item = table().get(_payout_key(provider_payout_id))
    if item is None:
        raise NotFound("No such sandbox payout.")
    return json_response(_public(item))


@router.get("/v1/payouts", summary="Sandbox provider: every payout received, oldest first", tags=TAGS)
def list_provider_payouts(
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response[SandboxPayoutPage]:
    page = table().query("gsi1pk = :pk", {":pk": _LISTING}, index="gsi1", limit=limit, start_key=decode_cursor(cursor, gsi1pk=_LISTING))
    return json_response(SandboxPayoutPage(items=[_public(i) for i in page.items], next_cursor=encode_cursor(page.last_key)))
