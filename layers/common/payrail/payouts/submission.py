"""Submitting one pending payout to the payment provider (the payout worker's use case).

Duplicate deliveries are normal (SQS is at-least-once, reconciliation re-enqueues): a payout no
longer ``pending`` is skipped, and the provider call carries the payout id as its idempotency
key, so even two workers racing on one payout create one provider payout. The status change is a
conditional update (forward only), never a read followed by a write.

Retries: a transient failure raises :class:`~payrail.errors.RetryLater` with an exponential
backoff with full jitter over the delivery's attempt number (the provider's Retry-After is a
floor); the queue consumer makes the message visible again then, and after the queue's
maxReceiveCount it goes to the dead-letter queue. Waiting for an open breaker or for the
provider's 429s is not this payout failing (:class:`~payrail.errors.Postpone`): it is sent again
as a new message with the wait, so a degraded provider never dead-letters a payout (up to
``MAX_POSTPONEMENTS``). Only one message per payout may do that: the new message carries a new
ticket, which the payout takes by a conditional write first, so of two copies of a message (a
duplicate delivery, the redelivery of a killed invocation) one sends the next message and the
other, like every copy holding an older ticket, is dropped. Without it each copy would send its
own, and a long outage would multiply the queue. Only the provider's documented business
rejection marks the payout ``failed`` (with the project's stable code, never the provider's
text); an authentication, configuration or unknown refusal is retried like a 5xx, counts against
the breaker, and raises ``ProviderCallsRefused``, which an alarm watches.

Time: a payout is started only while the invocation has the time to finish it (the provider
call's timeout, the table writes around it, and a reserve for the invocation's end). One reached
later is given back at once, so the next invocation takes it, instead of the invocation timing
out and every record of the batch, finished or not, being delivered again.
"""

from __future__ import annotations

import random
import secrets

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from pydantic import BaseModel, Field

from payrail import clock, retry
from payrail.clock import Deadline
from payrail.db import payouts as store
from payrail.db.circuit import CircuitBreaker, CircuitOpen
from payrail.domain.payout_status import PayoutStatus
from payrail.errors import Postpone, RetryLater
from payrail.observability import logger, metrics
from payrail.payouts.provider import PaymentProvider, ProviderRejected, ProviderTransientError
from payrail.settings import PayoutWorkerSettings

CIRCUIT_NAME = "payment-provider"
# Beyond the provider call's own timeout: the payout read, the breaker's writes and the status update.
TABLE_SECONDS_PER_RECORD = 2.0
# Kept back for the end of the invocation: one visibility change per record left behind, and the
# batch response. Without it, 4 of 462 worker invocations of a 500-payout chaos run still timed out.
END_OF_INVOCATION_SECONDS = 3.0


# A payout held back by an open breaker or by the provider's 429s is postponed (sent again as a new
# message) rather than retried on its receive count, at most this many times; after that the waits
# count as failures again, so a provider that never recovers still ends in the DLQ and its alarm.
MAX_POSTPONEMENTS = 100


class PayoutMessage(BaseModel):
    """The body of a payouts-queue message."""

    payout_id: str = Field(min_length=1, max_length=64)
    postponed: int = Field(default=0, ge=0, description="how many times the payout was held back and sent again")
    # None on the first message (the API's) and until the payout is first postponed.
    ticket: str | None = Field(default=None, min_length=1, max_length=64, description="the payout's ticket this message was sent with")


def _provider_error(kind: str) -> None:
    with single_metric(name="ProviderErrors", unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="kind", value=kind)


class Submitter:
    def __init__(
        self, settings: PayoutWorkerSettings, provider: PaymentProvider | None = None, breaker: CircuitBreaker | None = None
    ) -> None:
        self.settings = settings
        self.provider = provider or PaymentProvider(settings)
        self.breaker = breaker or CircuitBreaker(
            CIRCUIT_NAME,
            settings.breaker_failure_rate_percent,
            settings.breaker_minimum_calls,
            settings.breaker_window_seconds,
            settings.breaker_cooldown_seconds,
        )

    @property
    def seconds_needed(self) -> float:
        return self.settings.provider_timeout_seconds + TABLE_SECONDS_PER_RECORD + END_OF_INVOCATION_SECONDS

    def _later(self, error: ProviderTransientError | CircuitOpen, attempt: int, floor: int | None) -> RetryLater:
        seconds = retry.backoff_seconds(attempt - 1, self.settings.backoff_base_seconds, self.settings.backoff_cap_seconds, floor)
        return RetryLater(f"payout submission failed: {error.detail}", seconds)

    def _hold_back(self, later: RetryLater, message: PayoutMessage) -> RetryLater | None:
        """Waiting for the breaker or the provider's rate limit is no failure of this payout's: a new
        message, delayed (at most the backoff cap, so reconciliation still sees it in flight), if
        this message's ticket is still the payout's; None when another copy took it first.

        The ticket is taken before the consumer sends the new message: if that send then fails,
        this record comes back holding a ticket no longer the payout's and is dropped, and
        reconciliation re-enqueues the payout once it has gone unreceived for its in-flight time."""
        if message.postponed >= MAX_POSTPONEMENTS:
            return later
        ticket = secrets.token_urlsafe(12)
        if not store.take_ticket(message.payout_id, message.ticket, ticket):
            return None
        body = PayoutMessage(payout_id=message.payout_id, postponed=message.postponed + 1, ticket=ticket).model_dump()
        return Postpone(later.detail, min(later.seconds, self.settings.backoff_cap_seconds), body)

    def _superseded(self) -> str:
        metrics.add_metric(name="PayoutMessagesSuperseded", unit=MetricUnit.Count, value=1)
        logger.info("payout message superseded by a later one; dropped")
        return "superseded"

    def submit(self, message: PayoutMessage, deadline: Deadline, attempt: int = 1) -> str:
        """Submit the payout ``message`` names if ``deadline`` leaves the time to; what happened, for the log."""
        payout_id = message.payout_id
        logger.append_keys(payout_id=payout_id)
        if deadline.remaining() < self.seconds_needed:
            metrics.add_metric(name="PayoutsLeftForNextInvocation", unit=MetricUnit.Count, value=1)
            raise RetryLater(f"not started with {deadline.remaining():.1f} s left", 0, quiet=True)
        payout = store.receive(payout_id, clock.text())
        if payout is None:
            # Payouts are written before they are enqueued, so this is a foreign or corrupt message.
            logger.warning("no such payout; message dropped")
            return "missing"
        if payout.status != PayoutStatus.PENDING:
            metrics.add_metric(name="PayoutsSkipped", unit=MetricUnit.Count, value=1)
            return "skipped"
        if payout.ticket != message.ticket:
            # A copy of a message that another copy already postponed: that one's successor is live.
            return self._superseded()
        try:
            permit = self.breaker.before_call()
        except CircuitOpen as error:
            _provider_error("circuit_open")
            # Every message held by an open breaker would come back at the probe's moment and fail
            # again together, each spending a receive towards the DLQ: spread them over a cool-down.
            later = self._later(error, attempt, error.retry_after + random.randint(0, int(self.settings.breaker_cooldown_seconds)))
            if (held := self._hold_back(later, message)) is None:
                return self._superseded()
            raise held from error
        try:
            accepted = self.provider.submit(payout)
        except ProviderTransientError as error:
            _provider_error(error.kind)
            if error.refused:
                # A revoked key or a wrong URL fails every payout until someone fixes it: the
                # ProviderCallsRefused alarm watches this metric.
                metrics.add_metric(name="ProviderCallsRefused", unit=MetricUnit.Count, value=1)
            if error.kind == "rate_limited":
                self.breaker.record_success(permit)  # a 429 proves the provider is up; it is not a health failure
                # Backing off further the longer it lasts, counted over the postponements too.
                if (held := self._hold_back(self._later(error, attempt + message.postponed, error.retry_after), message)) is None:
                    return self._superseded()
                raise held from error
            self.breaker.record_failure(permit)
            raise self._later(error, attempt, error.retry_after) from error
        except ProviderRejected as rejected:
            self.breaker.record_success(permit)
            _provider_error("rejected")
            if store.mark_failed(payout, rejected.reason, clock.text()):
                metrics.add_metric(name="PayoutsFailed", unit=MetricUnit.Count, value=1)
            return "failed"
        self.breaker.record_success(permit)
        if store.mark_submitted(payout_id, accepted.provider_reference, clock.text()) is None:
            metrics.add_metric(name="PayoutsSkipped", unit=MetricUnit.Count, value=1)
            return "skipped"
        metrics.add_metric(name="PayoutsSubmitted", unit=MetricUnit.Count, value=1)
        logger.info("payout submitted", extra={"provider_reference": accepted.provider_reference})
        return "submitted"
