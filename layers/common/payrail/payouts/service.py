"""The payouts API's use cases: create (idempotent, rate-limited), read one, list.

AWS calls per ``POST /payouts``: a new payout costs two (the create transaction, which also
reserves the amount from the balance, and the SQS send), a replay one (the transaction, whose
cancellation hands back the stored answer), a rate-limited request one, and one without the money
for it one (the cancellation hands back the balance). See ``bench/`` for the measurement.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from payrail import clock, queues
from payrail.db import payouts as store
from payrail.domain import money
from payrail.domain.payout_status import PayoutStatus
from payrail.errors import DependencyFailure, RateLimited, Unprocessable, ValidationFailed
from payrail.observability import logger, metrics
from payrail.ownership import owned
from payrail.payouts.models import IDEMPOTENCY_KEY_PATTERN, Payout, PayoutPage, PayoutRequest, public_view
from payrail.settings import PayoutsApiSettings

_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def new_payout_id() -> str:
    return f"po_{uuid.uuid4().hex}"


def check_idempotency_key(key: str | None) -> str:
    if key is None or not _KEY.fullmatch(key):
        raise ValidationFailed(
            "The Idempotency-Key header is required: 1 to 255 visible ASCII characters.",
            errors=[
                {"in": "header", "field": "Idempotency-Key", "message": "1 to 255 visible ASCII characters", "type": "idempotency_key"}
            ],
        )
    return key


class InsufficientFunds(Unprocessable):
    """The payout exceeds the available balance: nothing was written, so the same key works once funds arrive."""

    slug = "insufficient-funds"
    title = "Insufficient funds"


@dataclass(frozen=True)
class CreateResult:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def create_payout(settings: PayoutsApiSettings, user_id: str, key: str | None, request: PayoutRequest) -> CreateResult:
    key = check_idempotency_key(key)
    now = time.time()
    stamp = clock.from_epoch(now)
    payout = Payout(
        id=new_payout_id(),
        status=PayoutStatus.PENDING,
        amount=request.amount,
        currency=request.currency,
        beneficiary=request.beneficiary,
        reference=request.reference,
        created_at=stamp,
        updated_at=stamp,
    ).model_dump(mode="json", exclude_none=True)
    fingerprint = request.fingerprint()
    outcome = store.create(
        user_id=user_id, key=key, fingerprint=fingerprint, payout=payout, now=now, rate_limit=settings.rate_limit_per_minute
    )
    if isinstance(outcome, store.Replayed):
        if outcome.fingerprint != fingerprint:
            metrics.add_metric(name="PayoutsRejected", unit=MetricUnit.Count, value=1)
            raise Unprocessable("This Idempotency-Key was already used with a different request body.")
        metrics.add_metric(name="PayoutsReplayed", unit=MetricUnit.Count, value=1)
        return CreateResult(outcome.status_code, outcome.body, replayed=True, headers={"Idempotent-Replayed": "true"})
    if isinstance(outcome, store.RateLimitHit):
        metrics.add_metric(name="PayoutsRejected", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="PayoutsRateLimited", unit=MetricUnit.Count, value=1)
        raise RateLimited(f"At most {settings.rate_limit_per_minute} payouts a minute; try again later.", retry_after=outcome.retry_after)
    if isinstance(outcome, store.InsufficientFunds):
        metrics.add_metric(name="PayoutsRejected", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="PayoutsInsufficientFunds", unit=MetricUnit.Count, value=1)
        available = money.to_decimal_string(outcome.available, request.currency)
        raise InsufficientFunds(
            f"{payout['amount_decimal']} {request.currency} is more than the {available} {request.currency} available.",
            available=outcome.available,
            available_decimal=available,
            currency=request.currency,
        )
    metrics.add_metric(name="PayoutsCreated", unit=MetricUnit.Count, value=1)
    _hand_off(settings.payouts_queue_url, payout["id"], payout["created_at"])
    return CreateResult(outcome.status_code, outcome.body)


def _hand_off(queue_url: str, payout_id: str, created_at: str) -> None:
    """Send the payout to the worker. A failure here does not fail the request: the payout and its
    outbox marker are durable, and the scheduled reconciliation re-enqueues a payout still
    ``pending`` whose message no worker received. Only the failure path writes (the marker noted,
    so reconciliation need not wait to be sure the message is lost): a "handed off" flag on
    success would cost a third AWS call on every create."""
    try:
        queues.send(queue_url, {"payout_id": payout_id})
    except DependencyFailure as error:
        metrics.add_metric(name="PayoutHandOffFailed", unit=MetricUnit.Count, value=1)
        logger.warning("payout not handed off; reconciliation will enqueue it", extra={"payout_id": payout_id, "error": error.detail})
        try:
            store.note_hand_off_failed(payout_id, created_at)
        except DependencyFailure as noting:  # the marker alone still gets it re-enqueued, later
            logger.warning("failed hand-off not noted", extra={"payout_id": payout_id, "error": noting.detail})


def get_payout(user_id: str, payout_id: str) -> Payout:
    payout = owned(store.get(payout_id) if len(payout_id) <= 64 else None, user_id, "No such payout.")
    return public_view(payout)


def list_payouts(user_id: str, limit: int, cursor: str | None) -> PayoutPage:
    items, next_cursor = store.list_for_user(user_id, limit, cursor)
    return PayoutPage(items=[public_view(item) for item in items], next_cursor=next_cursor)
