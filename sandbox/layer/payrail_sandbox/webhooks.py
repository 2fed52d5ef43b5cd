"""The sandbox payment provider's webhooks (dev stage and local only), served under /sandbox/payments.

After a NEW provider payout is accepted, :func:`schedule_payout_events` stores two events,
``payout.processing`` and then ``payout.paid`` (or ``payout.failed`` at the configured rate),
and puts them on an SQS delay queue, the second twice as late as the first. The sender function
consumes that queue: it moves the provider's own payout to the event's status (forward only,
so ``GET /v1/payouts/{id}`` tells the truth even when no webhook gets through), then, unless
webhooks are switched off, POSTs the event to the configured URL signed with the configured
scheme (Standard Webhooks HMAC with the ``current`` webhook secret, or a JWT with the active
key). Anything but a 2xx fails the record, so SQS delivers it again after the queue's
visibility timeout and dead-letters it after its maxReceiveCount.

Routes (tests and demos script the provider with them):

* ``GET / PUT /webhooks``: switch deliveries on or off, the delay, the failure rate, the scheme;
* ``POST /v1/payouts/{id}/events`` ``{"type": ...}``: emit a chosen event for a provider payout now;
* ``GET /v1/payouts/{id}/events``: every event emitted for it, with its delivery state;
* ``POST /v1/events/{event_id}/redeliver``: deliver an earlier event again (same id and body,
  fresh signature), without moving the provider's payout;
* ``POST /v1/funding`` ``{"funding_reference", "amount", "currency"}``: money received for a
  client, reported as a signed ``funding.received`` event after the configured delay.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import uuid
from datetime import timedelta
from functools import cache
from typing import Annotated, Any, Literal

import httpx
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.utilities import parameters
from payrail import clock, queues
from payrail.db import ConditionFailed
from payrail.domain import money
from payrail.errors import DependencyFailure, NotFound
from payrail.http import json_response
from payrail.observability import CORRELATION_HEADER, correlation_id, logger
from payrail.webhooks.signatures import sign_jwt, sign_standard
from pydantic import BaseModel, ConfigDict, Field

from payrail_sandbox import settings as sandbox_settings
from payrail_sandbox.settings import MAX_SQS_DELAY, SandboxWebhookSettings, SenderSettings
from payrail_sandbox.store import key
from payrail_sandbox.store import sandbox_table as table

router = APIGatewayHttpRouter()

PROVIDER = "payments"
TAGS = ["Sandbox payment provider"]
_PPM = 1_000_000  # the table refuses floats: a rate is stored as parts per million
DELIVERY_TIMEOUT_SECONDS = 5.0
# A delivery is started only with this much time left in the invocation: the POST's timeout, and
# the provider-side writes around it. A record reached later fails at once and SQS offers it
# again, instead of the invocation timing out and every record of the batch failing with it.
DELIVERY_TIME_NEEDED_SECONDS = DELIVERY_TIMEOUT_SECONDS + 2.0
SECRETS_CACHE_SECONDS = 60

# The provider's own payout statuses, forward only: accepted → processing → paid | failed.
_PROVIDER_SOURCES = {"processing": ["accepted"], "paid": ["accepted", "processing"], "failed": ["accepted", "processing"]}


class SandboxWebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Whether the sender delivers webhooks at all (statuses still progress)")
    delay_seconds: int = Field(
        default=2, ge=0, le=MAX_SQS_DELAY // 2, description="Delay of payout.processing; the final event comes at twice it"
    )
    failure_rate: float = Field(default=0, ge=0, le=1, description="Share of accepted payouts that end payout.failed")
    scheme: Literal["standard", "jwt"] = Field(default="standard", description="Standard Webhooks HMAC or a JWT Bearer token")


class TriggerEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=100, description="payout.processing, payout.paid, payout.failed or any other type")
    failure_reason: str | None = Field(default=None, max_length=500)


class EmittedEvent(BaseModel):
    id: str
    type: str
    provider_payout_id: str
    state: str
    attempts: int
    last_status_code: int | None = None


class EmittedEvents(BaseModel):
    items: list[EmittedEvent]


class FundingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    funding_reference: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="The client's funding reference")
    amount: int = Field(gt=0, le=10**12, description="Integer ISO 4217 minor units of the currency")
    currency: money.PayoutCurrency


class ScheduledFunding(BaseModel):
    id: str
    type: str
    funding_reference: str
    amount: int
    currency: str
    provider_reference: str
    state: str


# ------------------------------------------------------------------------ storage
def _key(*parts: str) -> str:
    return key(PROVIDER, *parts)


def _config_key() -> dict[str, str]:
    return {"pk": _key("WEBHOOKS"), "sk": "CONFIG"}


def _event_key(event_id: str) -> dict[str, str]:
    return {"pk": _key("EVENT", event_id), "sk": "EVENT"}


def _provider_payout_key(provider_payout_id: str) -> dict[str, str]:
    return {"pk": _key("PAYOUT", provider_payout_id), "sk": "PAYOUT"}


def _events_index(provider_payout_id: str) -> str:
    return _key("PAYOUT", provider_payout_id, "EVENTS")


def current_config(defaults: SandboxWebhookSettings) -> SandboxWebhookConfig:
    item = table().get(_config_key()) or {}
    return SandboxWebhookConfig(
        enabled=bool(item.get("enabled", True)),
        delay_seconds=int(item.get("delay_seconds", defaults.delay_seconds)),
        failure_rate=int(item.get("failure_ppm", defaults.failure_percent * _PPM // 100)) / _PPM,
        scheme=item.get("scheme", defaults.scheme),
    )


def _store_event(provider_payout: dict[str, Any], event_type: str, failure_reason: str | None = None, due_in: int | None = None) -> str:
    """Store an event; one the provider emits on its own (``due_in`` seconds from now) also moves
    the provider's payout when that time has come, delivered or not (:func:`catch_up`)."""
    event_id = f"evt_{uuid.uuid4().hex}"
    created_at = clock.text()
    document = {
        "id": event_id,
        "type": event_type,
        "created_at": created_at,
        "data": {
            "payout_id": (provider_payout.get("metadata") or {}).get("payout_id") or provider_payout.get("idempotency_key"),
            "provider_reference": provider_payout["id"],
            "failure_reason": failure_reason,
        },
    }
    _put_event(
        document,
        gsi1pk=_events_index(str(provider_payout["id"])),
        gsi1sk=f"{created_at}#{event_id}",
        provider_payout_id=provider_payout["id"],
        **({"due_at": clock.text(clock.now() + timedelta(seconds=due_in))} if due_in is not None else {}),
    )
    return event_id


def _put_event(document: dict[str, Any], **extra: Any) -> None:
    """Record a new event, ``scheduled`` and not yet attempted, with ``extra`` attributes."""
    table().put(
        {
            **_event_key(document["id"]),
            "id": document["id"],
            "type": document["type"],
            "body": json.dumps(document, separators=(",", ":")),
            "state": "scheduled",
            "attempts": 0,
            **extra,
        },
        condition="attribute_not_exists(pk)",
    )


def _enqueue(config: SandboxWebhookSettings, event_id: str, delay: int, advance: bool) -> None:
    queue_url = config.queue_url
    if not queue_url:
        raise DependencyFailure("SANDBOX_WEBHOOKS_QUEUE_URL is not configured.")
    queues.send(queue_url, {"event_id": event_id, "advance": advance}, delay_seconds=min(delay, MAX_SQS_DELAY))


# ------------------------------------------------------------------------ use cases
def schedule_payout_events(defaults: SandboxWebhookSettings, provider_payout: dict[str, Any]) -> list[str]:
    """Emit ``payout.processing`` after the configured delay and the final event after twice it.

    A sandbox run without the delay queue (a test hosting the provider in-process) has no webhooks."""
    if not defaults.queue_url:
        logger.warning("sandbox webhooks are not configured (no SANDBOX_WEBHOOKS_QUEUE_URL); none scheduled")
        return []
    config = current_config(defaults)
    fails = random.random() < config.failure_rate
    final, reason = ("payout.failed", "sandbox: simulated failure") if fails else ("payout.paid", None)
    processing = _store_event(provider_payout, "payout.processing", due_in=config.delay_seconds)
    terminal = _store_event(provider_payout, final, reason, due_in=2 * config.delay_seconds)
    _enqueue(defaults, processing, config.delay_seconds, advance=True)
    _enqueue(defaults, terminal, 2 * config.delay_seconds, advance=True)
    logger.info("sandbox webhooks scheduled", extra={"provider_payout_id": provider_payout["id"], "final": final})
    return [processing, terminal]


def trigger_event(defaults: SandboxWebhookSettings, provider_payout_id: str, request: TriggerEvent) -> str:
    provider_payout = table().get(_provider_payout_key(provider_payout_id))
    if provider_payout is None:
        raise NotFound("No such sandbox payout.")
    reason = request.failure_reason or ("sandbox: triggered failure" if request.type == "payout.failed" else None)
    event_id = _store_event(provider_payout, request.type, reason)
    _enqueue(defaults, event_id, 0, advance=True)
    return event_id


def schedule_funding(defaults: SandboxWebhookSettings, request: FundingRequest) -> ScheduledFunding:
    """Money received: store a ``funding.received`` event and deliver it after the configured delay."""
    event_id = f"evt_{uuid.uuid4().hex}"
    provider_reference = f"pf_{uuid.uuid4().hex[:24]}"
    document = {
        "id": event_id,
        "type": "funding.received",
        "created_at": clock.text(),
        "data": {**request.model_dump(mode="json"), "provider_reference": provider_reference},
    }
    _put_event(document)
    _enqueue(defaults, event_id, current_config(defaults).delay_seconds, advance=False)
    logger.info("sandbox funding scheduled", extra={"event_id": event_id, "currency": request.currency})
    return ScheduledFunding(
        id=event_id, type=str(document["type"]), provider_reference=provider_reference, state="scheduled", **request.model_dump()
    )


def redeliver(defaults: SandboxWebhookSettings, event_id: str) -> None:
    if table().get(_event_key(event_id)) is None:
        raise NotFound("No such sandbox event.")
    _enqueue(defaults, event_id, 0, advance=False)


def _event_items(provider_payout_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    start = None
    while True:
        page = table().query("gsi1pk = :pk", {":pk": _events_index(provider_payout_id)}, index="gsi1", start_key=start)
        items.extend(page.items)
        if not page.last_key:
            return items
        start = page.last_key


def events_of(provider_payout_id: str) -> list[EmittedEvent]:
    fields = EmittedEvent.model_fields
    return [EmittedEvent.model_validate({name: item.get(name) for name in fields}) for item in _event_items(provider_payout_id)]


def catch_up(provider_payout_id: str) -> None:
    """Move the provider's payout through every event it emitted on its own whose time has come.

    A real provider settles a payout whether or not its webhooks get through; here the sender
    moves the payout when it handles the event, so an event whose message never got a sender
    (its invocations timed out until it was dead-lettered) would freeze the payout for good.
    Reading the payout applies those events first (forward only, so applying one twice is harmless)."""
    now = clock.text()
    for event in _event_items(provider_payout_id):
        if str(event.get("due_at") or "~") <= now:
            _advance_provider_payout(event, json.loads(str(event["body"])))


def _advance_provider_payout(event: dict[str, Any], document: dict[str, Any]) -> None:
    status = str(event["type"]).removeprefix("payout.")
    sources = _PROVIDER_SOURCES.get(status)
    if not sources:
        return
    placeholders = {f":from{i}": source for i, source in enumerate(sources)}
    update = "SET #status = :status"
    values: dict[str, Any] = {":status": status, **placeholders}
    reason = document.get("data", {}).get("failure_reason")
    if status == "failed" and reason:
        update += ", failure_reason = :reason"
        values[":reason"] = reason
    # A failed condition means the provider's payout is already there or past it: forward only too.
    with contextlib.suppress(ConditionFailed):
        table().update(
            _provider_payout_key(str(event["provider_payout_id"])),
            update,
            condition=f"attribute_exists(pk) AND #status IN ({', '.join(placeholders)})",
            names={"#status": "status"},
            values=values,
            returns="NONE",
        )


class DeliveryFailed(DependencyFailure):
    """The receiver did not answer 2xx: the record fails and SQS delivers it again later."""


def _signed_headers(settings: SenderSettings, config: SandboxWebhookConfig, event_id: str, body: bytes) -> dict[str, str]:
    now = time.time()
    if config.scheme == "jwt":
        document: Any = parameters.get_secret(settings.webhook_jwt_keys_arn, transform="json", max_age=SECRETS_CACHE_SECONDS)
        kid = str(document["active_kid"])
        return {"authorization": f"Bearer {sign_jwt(str(document[kid]), kid, event_id, body, now)}"}
    secrets: Any = parameters.get_secret(settings.webhook_secrets_arn, transform="json", max_age=SECRETS_CACHE_SECONDS)
    return sign_standard(str(secrets["current"]), event_id, int(now), body)


@cache
def _http() -> httpx.Client:
    """The sender's client, built once per process: building one loads a TLS context and costs
    ~50 ms on this machine class (a pooled post ~1 ms), and a warm sender reuses its connections."""
    return httpx.Client(timeout=DELIVERY_TIMEOUT_SECONDS)


def send_event(settings: SenderSettings, event_id: str, advance: bool, seconds_left: float = DELIVERY_TIME_NEEDED_SECONDS) -> str:
    """The sender's use case for one queued event: advance the provider's payout, then deliver,
    if the invocation's ``seconds_left`` are enough to finish."""
    if seconds_left < DELIVERY_TIME_NEEDED_SECONDS:
        logger.info("sandbox webhook left for the next invocation", extra={"event_id": event_id, "seconds_left": round(seconds_left, 1)})
        raise DeliveryFailed(f"not started with {seconds_left:.1f} s left")
    db = table()
    event = db.get(_event_key(event_id))
    if event is None:
        logger.warning("sandbox event vanished; nothing to send", extra={"event_id": event_id})
        return "missing"
    body = str(event["body"]).encode()
    if advance:
        _advance_provider_payout(event, json.loads(body))
    config = current_config(settings)
    if not config.enabled:
        db.update(_event_key(event_id), "SET #state = :state", names={"#state": "state"}, values={":state": "suppressed"}, returns="NONE")
        logger.info("sandbox webhook suppressed (deliveries are switched off)", extra={"event_id": event_id})
        return "suppressed"
    headers = {
        "content-type": "application/json",
        CORRELATION_HEADER: correlation_id(),
        **_signed_headers(settings, config, event_id, body),
    }
    try:
        response = _http().post(settings.webhook_url, content=body, headers=headers)
        code: int | None = response.status_code
    except httpx.HTTPError as error:
        logger.warning("sandbox webhook delivery failed", extra={"event_id": event_id, "error": type(error).__name__})
        code = None
    delivered = code is not None and 200 <= code < 300
    db.update(
        _event_key(event_id),
        "SET #state = :state, attempts = attempts + :one, last_status_code = :code",
        names={"#state": "state"},
        values={":state": "delivered" if delivered else "failing", ":one": 1, ":code": code or 0},
        returns="NONE",
    )
    if not delivered:
        raise DeliveryFailed(f"the receiver answered {code}")
    logger.info("sandbox webhook delivered", extra={"event_id": event_id, "status_code": code, "scheme": config.scheme})
    return "delivered"


# ------------------------------------------------------------------------ routes
@router.get("/webhooks", summary="Sandbox provider: webhook delivery settings", tags=TAGS)
def get_webhook_config() -> Response[SandboxWebhookConfig]:
    return json_response(current_config(sandbox_settings.of(router)))


@router.put("/webhooks", summary="Sandbox provider: switch webhooks on/off, set delay, failure rate and scheme", tags=TAGS)
def put_webhook_config(config: SandboxWebhookConfig) -> Response[SandboxWebhookConfig]:
    table().put(
        {
            **_config_key(),
            "enabled": config.enabled,
            "delay_seconds": config.delay_seconds,
            "failure_ppm": round(config.failure_rate * _PPM),
            "scheme": config.scheme,
        }
    )
    return json_response(current_config(sandbox_settings.of(router)))


@router.post(
    "/v1/payouts/<provider_payout_id>/events",
    summary="Sandbox provider: emit a chosen event for a payout now",
    responses={202: {"description": "Queued for delivery"}, 404: {"description": "No such payout"}},
    tags=TAGS,
)
def post_payout_event(provider_payout_id: Annotated[str, Path(max_length=64)], request: TriggerEvent) -> Response[EmittedEvent]:
    event_id = trigger_event(sandbox_settings.of(router), provider_payout_id, request)
    return json_response(
        EmittedEvent(id=event_id, type=request.type, provider_payout_id=provider_payout_id, state="scheduled", attempts=0), 202
    )


@router.get("/v1/payouts/<provider_payout_id>/events", summary="Sandbox provider: the events emitted for a payout", tags=TAGS)
def get_payout_events(provider_payout_id: Annotated[str, Path(max_length=64)]) -> Response[EmittedEvents]:
    return json_response(EmittedEvents(items=events_of(provider_payout_id)))


@router.post(
    "/v1/events/<event_id>/redeliver",
    summary="Sandbox provider: deliver an earlier event again",
    responses={202: {"description": "Queued for delivery"}, 404: {"description": "No such event"}},
    tags=TAGS,
)
def post_redeliver(event_id: Annotated[str, Path(max_length=200)]) -> Response[dict[str, str]]:
    redeliver(sandbox_settings.of(router), event_id)
    return json_response({"id": event_id, "state": "redelivering"}, 202)


@router.post(
    "/v1/funding",
    summary="Sandbox provider: money received for a client, reported by a signed funding.received event after the delay",
    responses={202: {"description": "Queued for delivery"}},
    tags=TAGS,
)
def post_funding(request: FundingRequest) -> Response[ScheduledFunding]:
    return json_response(schedule_funding(sandbox_settings.of(router), request), 202)
