"""Applying payment events to payouts and balances, exactly once, forward only (the worker's use case).

Webhooks and the reconciliation both come through :func:`apply_change`, so a status learnt by
asking the provider is deduplicated and ordered by the very same transaction as a webhook.
"""

from __future__ import annotations

from aws_lambda_powertools import single_metric
from aws_lambda_powertools.metrics import MetricUnit

from payrail.db.payment_events import Funding, Outcome, StatusChange, apply_funding, apply_status_change
from payrail.domain import failures
from payrail.domain.payout_status import PayoutStatus
from payrail.errors import DependencyFailure
from payrail.observability import logger, metrics
from payrail.webhooks.events import FUNDING_RECEIVED, PaymentEvent


class PayoutNotFoundYet(DependencyFailure):
    """An event names a payout that does not exist (yet): retried by SQS, then dead-lettered."""

    title = "The event's payout is unknown"


def change_of(event: PaymentEvent) -> StatusChange:
    if event.target is None:
        return StatusChange(event.id, event.type, str(event.data.get("payout_id") or "") or None, None)
    data = event.payout_data()
    return StatusChange(
        event.id, event.type, data.payout_id, event.target, data.provider_reference, failure_reason_of(event.target, data.failure_reason)
    )


def failure_reason_of(target: PayoutStatus | None, reported: object) -> str | None:
    """The payout's ``failure_reason`` when a provider reports it failed: the project's stable code
    and message for what it reported, never its text (which goes to the log)."""
    if target != PayoutStatus.FAILED:
        return None
    failure = failures.reported(reported)
    logger.info("provider reported a failure", extra={"failure_code": failure.code, "provider_reason": str(reported or "")[:200]})
    return failure.reason


def apply_change(change: StatusChange) -> Outcome:
    """Apply one change; raises PayoutNotFoundYet for an unknown payout so the message is retried."""
    outcome, payout = apply_status_change(change)
    _count(outcome)
    if outcome is Outcome.APPLIED and change.target is not None and change.target.value in ("paid", "failed"):
        # Payouts finished, by how (the dashboard's paid / failed), counted once: only an applied change.
        with single_metric(name="PayoutsFinished", unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
            metric.add_dimension(name="status", value=change.target.value)
    details = {
        "event_id": change.event_id,
        "event_type": change.event_type,
        "payout_id": change.payout_id,
        "outcome": outcome.value,
        "source": change.source,
        "payout_status": payout.status.value if payout else None,
    }
    if outcome is Outcome.UNKNOWN_PAYOUT:
        logger.warning("payment event for an unknown payout; it will be retried", extra=details)
        raise PayoutNotFoundYet(f"payout {change.payout_id} does not exist")
    if change.target is None:
        logger.warning("payment event of an unknown type recorded and ignored", extra=details)
    else:
        logger.info("payment event handled", extra=details)
    return outcome


def _count(outcome: Outcome) -> None:
    with single_metric(name="PaymentEvents", unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="outcome", value=outcome.value)


def apply_funding_event(event: PaymentEvent) -> Outcome:
    """Credit a ``funding.received`` event once; an unknown funding reference is recorded as ignored."""
    data = event.funding_data()
    funding = Funding(event.id, event.type, data.funding_reference, data.amount, data.currency, data.provider_reference)
    outcome, user_id = apply_funding(funding)
    _count(outcome)
    if outcome is Outcome.APPLIED:
        with single_metric(name="FundingCredited", unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
            metric.add_dimension(name="currency", value=data.currency)
    details = {"event_id": event.id, "event_type": event.type, "outcome": outcome.value, "user_id": user_id, "currency": data.currency}
    if user_id is None:
        logger.warning("funding for an unknown funding reference recorded and ignored", extra=details)
    else:
        logger.info("funding event handled", extra=details)
    return outcome


def apply_event(event: PaymentEvent) -> Outcome:
    if event.type == FUNDING_RECEIVED:
        return apply_funding_event(event)
    return apply_change(change_of(event))
