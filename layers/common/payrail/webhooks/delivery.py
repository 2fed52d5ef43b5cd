"""Delivering one merchant event to one endpoint: one SQS message per (event, endpoint) pair and try.

A message names the pair, carries the event's body (the bytes signed and sent), the task's
generation (0, then one more per redeliver) and the try's place in the retry schedule. For it:

1. a message whose try is not due yet (a wait longer than SQS's 15-minute delay) is sent again
   with the rest of the wait, and nothing else happens;
2. the endpoint is read: a deleted or disabled one gets nothing;
3. the attempt is counted on the pair's task, only while the pair is not already settled for
   this generation (a duplicate message of a delivered pair delivers nothing);
4. the body is signed with the endpoint's secret(s) and POSTed through :mod:`payrail.webhooks.egress`
   (SSRF-checked on the address actually connected to, no redirects, bounded by the timeout);
5. the attempt and the pair's status are recorded in one transaction; a failure schedules the
   next try (none after the last one, nor after a redeliver, which is one delivery), and an
   endpoint that has failed every attempt for the configured time is disabled with its reason.

A slow endpoint costs only its own message's invocation time; other pairs are other messages.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from aws_lambda_powertools import single_metric
from aws_lambda_powertools.metrics import MetricUnit

from payrail import clock, kms
from payrail.db import merchant_webhooks as store
from payrail.observability import logger, metrics
from payrail.settings import WebhookDeliverySettings
from payrail.webhooks import egress
from payrail.webhooks.delivery_messages import DeliveryMessage, send
from payrail.webhooks.sending import next_wait, signed_headers

EXCERPT_BYTES = 200
SECRET_CACHE_SECONDS = 300
SECRET_CACHE_ENTRIES = 512

# Decrypted secrets of this warm worker, by (endpoint, ciphertext): a burst of events to one endpoint
# costs one KMS call per secret, not one per attempt. The ciphertext is read from the table on every
# attempt and a rotation writes a new one, so a rotated secret is never served from here; the age
# bound means a revoked KMS grant stops deliveries within minutes. (Powertools' parameter cache keys
# by name, so it would keep serving the old secret across a rotation; functools' caches have no age.)
_secrets: dict[tuple[str, str], tuple[float, str]] = {}


def _decrypted(endpoint_id: str, ciphertext: str, now: float) -> str:
    cached = _secrets.get((endpoint_id, ciphertext))
    if cached is not None and cached[0] > now:
        return cached[1]
    plaintext = kms.decrypt(ciphertext, {"endpoint_id": endpoint_id}).decode()
    while len(_secrets) >= SECRET_CACHE_ENTRIES:
        del _secrets[next(iter(_secrets))]  # the oldest entry: dicts keep insertion order
    _secrets[(endpoint_id, ciphertext)] = (now + SECRET_CACHE_SECONDS, plaintext)
    return plaintext


def signing_secrets(endpoint_id: str, now: float) -> list[str]:
    """The endpoint's current secret and, within a day of a rotation, the previous one."""
    stored = store.get_secrets(endpoint_id)
    if stored is None:
        return []
    found = [_decrypted(endpoint_id, stored.current, now)]
    if stored.previous and stored.previous_until and stored.previous_until > now:
        found.append(_decrypted(endpoint_id, stored.previous, now))
    return found


def deliver(settings: WebhookDeliverySettings, message: DeliveryMessage) -> str:
    """Handle one delivery message; returns what happened (for logs and tests)."""
    now = time.time()
    if message.due_at - now > 1:
        send(settings.webhook_deliveries_queue_url, message, now)
        return "waiting"
    endpoint = store.get_endpoint(message.endpoint_id)
    if endpoint is None or endpoint.status != "enabled":
        logger.info("endpoint gone or disabled; nothing delivered", extra={"endpoint_id": message.endpoint_id})
        return "skipped"
    attempt_number = store.begin_attempt(message.endpoint_id, message.event_id, message.generation)
    if attempt_number is None:
        return "settled"
    body = message.body.encode()
    secrets = signing_secrets(message.endpoint_id, now)
    headers = signed_headers(message.event_id, int(now), body, secrets)
    result = egress.deliver(
        endpoint.url, body, headers, timeout=settings.webhook_timeout_seconds, allow_private=settings.webhook_allow_private_urls
    )
    finished = time.time()
    next_due: float | None = None
    if not result.delivered and not message.redeliver:
        wait = next_wait(settings.schedule, message.try_index + 1)
        next_due = None if wait is None else finished + wait
    status: Literal["pending", "delivered", "failed"] | None = "delivered"
    if not result.delivered:
        status = None if message.redeliver else ("pending" if next_due is not None else "failed")
    stamp = clock.from_epoch(finished)
    attempt: dict[str, Any] = {
        "id": f"att_{uuid.uuid4().hex}",
        "event_id": message.event_id,
        "event_type": message.event_type,
        "attempt": attempt_number,
        "status_code": result.status_code,
        "duration_ms": int(result.duration_ms),
        "response_excerpt": (result.response_excerpt or "")[:EXCERPT_BYTES],
        "error": result.error,
        "outcome": "delivered" if result.delivered else "failed",
        "next_attempt_at": clock.from_epoch(next_due) if next_due is not None else None,
        "created_at": stamp,
    }
    store.finish_attempt(message.endpoint_id, message.event_id, attempt, status, message.generation)
    if result.delivered:
        _count_delivery("delivered")
        if endpoint.failing_since is not None:
            store.note_success(message.endpoint_id)
        return "delivered"
    _count_delivery("failed")
    logger.info(
        "webhook attempt failed",
        extra={"endpoint_id": message.endpoint_id, "event_id": message.event_id, "status_code": result.status_code, "error": result.error},
    )
    if next_due is not None:
        send(settings.webhook_deliveries_queue_url, message.model_copy(update={"try_index": message.try_index + 1, "due_at": next_due}))
    elif not message.redeliver:
        _count_delivery("abandoned")
    _disable_if_failing_too_long(settings, message.endpoint_id, int(finished))
    return "failed"


def _count_delivery(outcome: str) -> None:
    """Deliveries by outcome (the dashboard's): delivered, failed (an attempt), abandoned (the last one failed)."""
    with single_metric(name="WebhookDeliveries", unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="outcome", value=outcome)


def _disable_if_failing_too_long(settings: WebhookDeliverySettings, endpoint_id: str, now: int) -> None:
    noted = store.note_failure(endpoint_id, now)
    if noted is None or noted.failing_since is None or now - noted.failing_since < settings.webhook_disable_after_seconds:
        return
    days = settings.webhook_disable_after_seconds / 86400
    reason = f"Every delivery attempt failed for {days:g} days; fix the endpoint and PATCH its status to enabled."
    if store.disable_failing(endpoint_id, now - settings.webhook_disable_after_seconds, reason, clock.from_epoch(now)):
        metrics.add_metric(name="WebhookEndpointsDisabled", unit=MetricUnit.Count, value=1)
        logger.warning("webhook endpoint disabled", extra={"endpoint_id": endpoint_id})
