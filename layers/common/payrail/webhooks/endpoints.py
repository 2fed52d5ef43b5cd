"""The webhook endpoints API's use cases: register, list, read, change, delete, rotate the secret,
list delivery attempts, redeliver an event.

An endpoint belongs to the user who registered it; another user's is a 404 (``payrail.ownership``).
Its secret (``whsec_...``) is shown once, in the answer that made it (create or rotate); the table
holds it KMS-encrypted under the endpoint's id as encryption context, in an item of its own. A URL
is checked against the SSRF rules (``payrail.webhooks.egress``) when it is registered or changed,
and again on every delivery, on the address actually connected to.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from payrail import clock, kms
from payrail.db import merchant_webhooks as store
from payrail.db.merchant_webhooks import StoredAttempt, StoredEndpoint
from payrail.errors import NotFound, ValidationFailed
from payrail.ownership import owned
from payrail.settings import WebhookEndpointsApiSettings
from payrail.webhooks import egress
from payrail.webhooks.delivery_messages import DeliveryMessage, send
from payrail.webhooks.merchant_events import EVENT_TYPES
from payrail.webhooks.sending import new_secret

ROTATION_OVERLAP_SECONDS = 24 * 3600
MISSING = "No such webhook endpoint."

EventType = Literal["payout.created", "payout.submitted", "payout.processing", "payout.paid", "payout.failed", "bank_connection.synced"]
Url = Annotated[str, Field(min_length=1, max_length=2048, description="Where events are POSTed: https (http and loopback on dev only)")]
Description = Annotated[str, Field(max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")]
EventList = Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES))]


class EndpointRequest(BaseModel):
    """``POST /webhook-endpoints`` body."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    url: Url
    events: EventList | None = Field(default=None, description="The event types to receive; all of them when left out")
    description: Description = ""


class EndpointChange(BaseModel):
    """``PATCH /webhook-endpoints/{id}`` body: the fields to change."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    url: Url | None = None
    events: EventList | None = None
    description: Description | None = None
    status: Literal["enabled", "disabled"] | None = None


class Endpoint(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str
    status: Literal["enabled", "disabled"]
    disabled_reason: str | None = Field(default=None, description="Why Payrail disabled it (every attempt failing)")
    created_at: str
    updated_at: str


class CreatedEndpoint(Endpoint):
    secret: str = Field(description="whsec_...: shown only here and in a rotation's answer")


class EndpointPage(BaseModel):
    items: list[Endpoint]
    next_cursor: str | None = None


class RotatedSecret(BaseModel):
    secret: str = Field(description="The new whsec_ secret; the previous one also signs for 24 hours")


class DeliveryAttempt(BaseModel):
    id: str
    event_id: str
    event_type: str
    attempt: int
    status_code: int | None
    duration_ms: int
    response_excerpt: str = Field(description="The first 200 bytes of the endpoint's answer")
    error: str | None
    outcome: Literal["delivered", "failed"]
    next_attempt_at: str | None
    created_at: str


class DeliveryPage(BaseModel):
    items: list[DeliveryAttempt]
    next_cursor: str | None = None


class RedeliveryQueued(BaseModel):
    event_id: str
    endpoint_id: str
    status: Literal["queued"] = "queued"


def _view(endpoint: StoredEndpoint) -> Endpoint:
    return Endpoint.model_validate(endpoint.model_dump(include=set(Endpoint.model_fields)))


def _attempt_view(attempt: StoredAttempt) -> DeliveryAttempt:
    return DeliveryAttempt.model_validate(attempt.model_dump())


def _checked_url(settings: WebhookEndpointsApiSettings, url: str) -> str:
    refused = egress.check_url(url, allow_private=settings.webhook_allow_private_urls)
    if refused:
        raise ValidationFailed(
            f"This URL cannot receive webhooks: {refused}",
            errors=[{"in": "body", "field": "url", "message": refused, "type": "url_refused"}],
        )
    return url


def _owned(endpoint_id: str, user_id: str) -> StoredEndpoint:
    return owned(store.get_endpoint(endpoint_id) if len(endpoint_id) <= 64 else None, user_id, MISSING)


def _seal(settings: WebhookEndpointsApiSettings, endpoint_id: str, secret: str) -> str:
    return kms.encrypt(settings.webhook_secrets_key_id, secret.encode(), {"endpoint_id": endpoint_id})


def create_endpoint(settings: WebhookEndpointsApiSettings, user_id: str, request: EndpointRequest) -> CreatedEndpoint:
    url = _checked_url(settings, request.url)
    stamp = clock.text()
    endpoint_id = f"we_{uuid.uuid4().hex}"
    secret = new_secret()
    stored = {
        "id": endpoint_id,
        "user_id": user_id,
        "url": url,
        "events": list(request.events or EVENT_TYPES),
        "description": request.description,
        "status": "enabled",
        "created_at": stamp,
        "updated_at": stamp,
    }
    store.create_endpoint(stored, _seal(settings, endpoint_id, secret))
    return CreatedEndpoint(**_view(StoredEndpoint.model_validate(stored)).model_dump(), secret=secret)


def list_endpoints(user_id: str, limit: int, cursor: str | None) -> EndpointPage:
    items, next_cursor = store.list_endpoints(user_id, limit, cursor)
    return EndpointPage(items=[_view(item) for item in items], next_cursor=next_cursor)


def get_endpoint(user_id: str, endpoint_id: str) -> Endpoint:
    return _view(_owned(endpoint_id, user_id))


def change_endpoint(settings: WebhookEndpointsApiSettings, user_id: str, endpoint_id: str, change: EndpointChange) -> Endpoint:
    changes = change.model_dump(exclude_none=True)
    if "url" in changes:
        _checked_url(settings, changes["url"])
    if "events" in changes:
        changes["events"] = list(dict.fromkeys(changes["events"]))
    if not changes:
        return get_endpoint(user_id, endpoint_id)
    updated = store.update_endpoint(endpoint_id, user_id, changes, clock.text()) if len(endpoint_id) <= 64 else None
    if updated is None:
        raise NotFound(MISSING)
    return _view(updated)


def delete_endpoint(user_id: str, endpoint_id: str) -> None:
    if len(endpoint_id) > 64 or not store.delete_endpoint(endpoint_id, user_id):
        raise NotFound(MISSING)


def rotate_secret(settings: WebhookEndpointsApiSettings, user_id: str, endpoint_id: str) -> RotatedSecret:
    _owned(endpoint_id, user_id)
    secret = new_secret()
    if not store.rotate_secret(endpoint_id, _seal(settings, endpoint_id, secret), int(time.time()) + ROTATION_OVERLAP_SECONDS):
        raise NotFound(MISSING)
    return RotatedSecret(secret=secret)


def list_deliveries(user_id: str, endpoint_id: str, limit: int, cursor: str | None) -> DeliveryPage:
    _owned(endpoint_id, user_id)
    items, next_cursor = store.list_attempts(endpoint_id, limit, cursor)
    return DeliveryPage(items=[_attempt_view(item) for item in items], next_cursor=next_cursor)


def redeliver(settings: WebhookEndpointsApiSettings, user_id: str, endpoint_id: str, event_id: str) -> RedeliveryQueued:
    _owned(endpoint_id, user_id)
    event = store.get_event(event_id) if len(event_id) <= 64 else None
    if event is None or event.user_id != user_id:
        raise NotFound("No such event.")
    now = time.time()
    expires_at = int(now) + settings.webhook_event_retention_days * 86400
    generation = store.request_redelivery(endpoint_id, event.id, user_id, clock.from_epoch(now), expires_at)
    message = DeliveryMessage(
        event_id=event.id,
        event_type=event.type,
        endpoint_id=endpoint_id,
        body=event.body,
        generation=generation,
        due_at=now,
        redeliver=True,
    )
    send(settings.webhook_deliveries_queue_url, message, now)
    return RedeliveryQueued(event_id=event.id, endpoint_id=endpoint_id)
