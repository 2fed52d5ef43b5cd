"""Receiving a payment webhook: verify the raw body, then hand the event to the worker.

Nothing is parsed before the signature is verified. A verified event goes onto the
payment-events queue unchanged and the provider gets 202; the worker deduplicates, so a
redelivery of an accepted event is also 202 (and changes nothing).

Secrets (read through Powertools Parameters, cached for five minutes):

* ``WEBHOOK_SECRETS_ARN``: ``{"current": ..., "previous": ...}``; every non-empty value verifies
  a Standard Webhooks signature, so a new secret is added before the old one is removed.
* ``WEBHOOK_JWT_KEYS_ARN``: ``{"active_kid": "k1", "k1": ..., "k0": ...}``; HS256 keys shared with
  the provider, chosen by the token's ``kid``; the provider signs with ``active_kid``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters

from payrail import queues
from payrail.errors import DependencyFailure, Unauthorized
from payrail.observability import logger, metrics
from payrail.settings import WebhookReceiveSettings, WebhookSecretSettings
from payrail.webhooks.events import PaymentEvent, parse_event
from payrail.webhooks.signatures import SignatureRejected, verify_jwt, verify_standard

SECRETS_CACHE_SECONDS = 300


def _secret_document(arn: str) -> dict[str, Any]:
    try:
        document: Any = parameters.get_secret(arn, transform="json", max_age=SECRETS_CACHE_SECONDS)
    except parameters.exceptions.GetParameterError as error:
        raise DependencyFailure("The webhook secrets cannot be read.") from error
    if not isinstance(document, dict):
        raise DependencyFailure("The webhook secret is not a JSON object.")
    return document


def hmac_secrets(settings: WebhookSecretSettings) -> list[str]:
    """Every configured Standard Webhooks secret (any of them verifies)."""
    document = _secret_document(settings.webhook_secrets_arn)
    return [value for value in document.values() if isinstance(value, str) and value]


def jwt_keys(settings: WebhookSecretSettings) -> tuple[str, dict[str, str]]:
    """The active kid and every JWT key by kid."""
    document = _secret_document(settings.webhook_jwt_keys_arn)
    keys = {kid: value for kid, value in document.items() if kid != "active_kid" and isinstance(value, str) and value}
    return str(document.get("active_kid", "")), keys


def _rejected(reason: str, detail: str) -> Unauthorized:
    with single_metric(name="WebhookRejected", unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="reason", value=reason)
    logger.warning("webhook rejected", extra={"reason": reason})
    return Unauthorized(detail, reason=reason)


def receive_webhook(settings: WebhookReceiveSettings, headers: Mapping[str, str], body: bytes, now: float | None = None) -> PaymentEvent:
    """Verify, parse and enqueue one delivery; returns the accepted event.

    Unauthorized (401) for anything unverified, ValidationFailed (400) for a verified but
    malformed body; nothing is enqueued in either case."""
    clock = time.time() if now is None else now
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        if "webhook-signature" in lowered or "webhook-id" in lowered or "webhook-timestamp" in lowered:
            signed_id = verify_standard(lowered, body, hmac_secrets(settings), clock)
        elif "authorization" in lowered:
            signed_id = str(verify_jwt(lowered["authorization"], body, jwt_keys(settings)[1], clock)["jti"])
        else:
            raise SignatureRejected("missing_headers", "The delivery carries no signature.")
    except SignatureRejected as rejected:
        raise _rejected(rejected.reason, rejected.detail) from rejected
    event = parse_event(body)
    if event.id != signed_id:
        raise _rejected("id_mismatch", "The signed id is not the event's id.")
    # The event goes on unchanged (the body is valid JSON by now): the worker parses it again.
    queues.send(settings.payment_events_queue_url, json.loads(body), attributes={"event_id": event.id})
    metrics.add_metric(name="WebhookAccepted", unit=MetricUnit.Count, value=1)
    logger.info("webhook accepted", extra={"event_id": event.id, "event_type": event.type})
    return event
