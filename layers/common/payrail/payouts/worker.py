"""The payout worker's use case: submit one pending payout to the payment provider.

Duplicate deliveries are normal (SQS is at-least-once, reconciliation re-enqueues): a payout no
longer ``pending`` is skipped, and the provider call carries the payout id as its idempotency
key, so even two workers racing on one payout create one provider payout. The status change is a
conditional update (forward only), never a read followed by a write.

Retries: a transient failure fails the record (partial batch response) after pushing the
message's visibility out by an exponential backoff with full jitter, or by the provider's
Retry-After when it is longer; SQS then redelivers it, and after the queue's maxReceiveCount it
goes to the dead-letter queue. A permanent 4xx marks the payout ``failed`` and the record succeeds.

Time: a record is started only while the invocation has the time to finish it (the provider
call's timeout, the table writes around it, and a reserve for the invocation's end). A record
reached later fails at once and is made visible again, so the next invocation takes it, instead
of the invocation timing out and every record of the batch, finished or not, being delivered
again.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import cache

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import BaseModel, ConfigDict, Field, Json

from payrail import queues
from payrail.db import payouts as store
from payrail.db.circuit import CircuitBreaker, CircuitOpen
from payrail.handlers import adopt_correlation_id
from payrail.observability import logger, metrics
from payrail.payouts import provider
from payrail.payouts.provider import ProviderRejected, ProviderSettings, ProviderTransientError
from payrail.payouts.service import utc_now_text
from payrail.payouts.status import PayoutStatus
from payrail.settings import load

CIRCUIT_NAME = "payment-provider"
# Beyond the provider call's own timeout: the payout read, the breaker's writes and the status update.
TABLE_SECONDS_PER_RECORD = 2.0
# Kept back for the end of the invocation: one visibility change per record left behind, and the
# batch response. Without it, 4 of 462 worker invocations of a 500-payout chaos run still timed out.
END_OF_INVOCATION_SECONDS = 3.0


class WorkerSettings(ProviderSettings):
    model_config = ConfigDict(extra="ignore", frozen=True)
    payouts_queue_url: str = Field(alias="PAYOUTS_QUEUE_URL", min_length=1)
    breaker_failure_threshold: int = Field(alias="BREAKER_FAILURE_THRESHOLD", default=5, ge=1)
    breaker_cooldown_seconds: float = Field(alias="BREAKER_COOLDOWN_SECONDS", default=15, gt=0)
    backoff_base_seconds: float = Field(alias="BACKOFF_BASE_SECONDS", default=2, gt=0)
    backoff_cap_seconds: int = Field(alias="BACKOFF_CAP_SECONDS", default=300, ge=1)


class PayoutMessage(BaseModel):
    payout_id: str = Field(min_length=1, max_length=64)


class PayoutRecord(SqsRecordModel):
    """An SQS record of the payouts queue, its body parsed by the batch processor."""

    body: Json[PayoutMessage]


def backoff_seconds(
    receive_count: int, base: float, cap: int, retry_after: int | None = None, draw: Callable[[], float] = random.random
) -> int:
    """Exponential backoff with full jitter (AWS's recommendation: spreads retries of many failed
    messages), at least one second, at most ``cap``; a provider's Retry-After is a floor."""
    ceiling = min(float(cap), base * 2 ** max(0, receive_count - 1))
    delay = max(1, round(draw() * ceiling))
    if retry_after:
        delay = max(delay, retry_after)
    return min(delay, 43200)


@cache
def breaker() -> CircuitBreaker:
    settings = load(WorkerSettings)
    return CircuitBreaker(CIRCUIT_NAME, settings.breaker_failure_threshold, settings.breaker_cooldown_seconds)


def _provider_error(kind: str) -> None:
    with single_metric(name="ProviderErrors", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="kind", value=kind)


def _back_off(record: PayoutRecord, retry_after: int | None) -> int:
    settings = load(WorkerSettings)
    receive_count = int(record.attributes.ApproximateReceiveCount or 1)
    delay = backoff_seconds(receive_count, settings.backoff_base_seconds, settings.backoff_cap_seconds, retry_after)
    queues.change_visibility(settings.payouts_queue_url, record.receiptHandle, delay)
    return delay


class NotStarted(Exception):
    """Too little of the invocation was left to submit a payout; its message comes back at once."""


def seconds_needed() -> float:
    return load(WorkerSettings).provider_timeout_seconds + TABLE_SECONDS_PER_RECORD + END_OF_INVOCATION_SECONDS


def handle_record(record: PayoutRecord, seconds_left: float) -> str:
    """Process one message with ``seconds_left`` in the invocation; raising fails only this record
    of the batch."""
    adopt_correlation_id(record.messageAttributes)
    payout_id = record.body.payout_id
    logger.append_keys(payout_id=payout_id)
    if seconds_left < seconds_needed():
        # Not a failure of the payout: the message is offered again now, not after a backoff.
        queues.change_visibility(load(WorkerSettings).payouts_queue_url, record.receiptHandle, 0)
        metrics.add_metric(name="PayoutsLeftForNextInvocation", unit=MetricUnit.Count, value=1)
        logger.info("payout left for the next invocation", extra={"seconds_left": round(seconds_left, 1)})
        raise NotStarted(f"not started with {seconds_left:.1f} s left")
    try:
        return submit_payout(payout_id)
    except CircuitOpen as error:
        # Every message held by an open breaker would come back at the probe's moment and fail
        # again together, each spending a receive towards the DLQ: spread them over a cool-down.
        delay = _back_off(record, error.retry_after + random.randint(0, load(WorkerSettings).breaker_cooldown_seconds))
        logger.warning("payout submission will be retried", extra={"error": error.detail, "retry_in_seconds": delay})
        raise
    except ProviderTransientError as error:
        delay = _back_off(record, error.retry_after)
        logger.warning("payout submission will be retried", extra={"error": error.detail, "retry_in_seconds": delay})
        raise


def submit_payout(payout_id: str) -> str:
    payout = store.get(payout_id)
    if payout is None:
        # Payouts are written before they are enqueued, so this is a foreign or corrupt message.
        logger.warning("no such payout; message dropped")
        return "missing"
    if payout["status"] != PayoutStatus.PENDING:
        metrics.add_metric(name="PayoutsSkipped", unit=MetricUnit.Count, value=1)
        return "skipped"
    circuit = breaker()
    try:
        permit = circuit.before_call()
    except CircuitOpen:
        _provider_error("circuit_open")
        raise
    try:
        accepted = provider.submit(payout)
    except ProviderTransientError as error:
        _provider_error(error.kind)
        if error.kind == "rate_limited":
            circuit.record_success(permit)  # a 429 proves the provider is up; it is not a health failure
        else:
            circuit.record_failure(permit)
        raise
    except ProviderRejected as rejected:
        circuit.record_success(permit)
        _provider_error("rejected")
        if store.mark_failed(payout, rejected.reason, utc_now_text()):
            metrics.add_metric(name="PayoutsFailed", unit=MetricUnit.Count, value=1)
        return "failed"
    circuit.record_success(permit)
    if store.mark_submitted(payout_id, accepted.provider_reference, utc_now_text()) is None:
        metrics.add_metric(name="PayoutsSkipped", unit=MetricUnit.Count, value=1)
        return "skipped"
    metrics.add_metric(name="PayoutsSubmitted", unit=MetricUnit.Count, value=1)
    logger.info("payout submitted", extra={"provider_reference": accepted.provider_reference})
    return "submitted"
