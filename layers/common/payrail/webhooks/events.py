"""The payment provider's webhook event, as the receiver accepts it and the worker applies it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, ValidationError

from payrail.domain import money
from payrail.domain.payout_status import PayoutStatus
from payrail.errors import ValidationFailed

EventId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@/+=-]+$")]

# The event types that move a payout, and where they move it.
TARGETS: dict[str, PayoutStatus] = {
    "payout.processing": PayoutStatus.PROCESSING,
    "payout.paid": PayoutStatus.PAID,
    "payout.failed": PayoutStatus.FAILED,
}


FUNDING_RECEIVED = "funding.received"
# One funding is at most a trillion minor units: far above any real transfer, far below int64.
MAX_FUNDING_MINOR = 10**12


class FundingEventData(BaseModel):
    """``funding.received``'s data: money received for the user whose funding reference it names."""

    model_config = ConfigDict(extra="allow")

    funding_reference: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    amount: StrictInt = Field(gt=0, le=MAX_FUNDING_MINOR)
    currency: money.PayoutCurrency
    provider_reference: Annotated[str, StringConstraints(max_length=200)] | None = None


class PayoutEventData(BaseModel):
    model_config = ConfigDict(extra="allow")

    payout_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    provider_reference: str | None = None
    failure_reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class PaymentEvent(BaseModel):
    """``{"id", "type", "created_at", "data": {"payout_id", "provider_reference", "failure_reason"}}``,
    or for ``funding.received`` ``data: {"funding_reference", "amount", "currency", "provider_reference"}``.

    ``data`` must name a payout for the payout event types, and a funding for ``funding.received``; an unknown type is accepted with any
    ``data`` (and recorded as ignored), so the provider adding a type never fails deliveries."""

    model_config = ConfigDict(extra="allow")

    id: EventId
    type: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    created_at: datetime
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def target(self) -> PayoutStatus | None:
        return TARGETS.get(self.type)

    def payout_data(self) -> PayoutEventData:
        return PayoutEventData.model_validate(self.data)

    def funding_data(self) -> FundingEventData:
        return FundingEventData.model_validate(self.data)


def parse_event(raw: bytes) -> PaymentEvent:
    """The event in ``raw``, or ValidationFailed (400) for malformed JSON or a wrong shape."""
    try:
        event = PaymentEvent.model_validate_json(raw)
        if event.target is not None:
            event.payout_data()
        elif event.type == FUNDING_RECEIVED:
            event.funding_data()
    except ValidationError as error:
        errors = [
            {"in": "body", "field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "invalid"), "type": e.get("type")}
            for e in error.errors()
        ]
        raise ValidationFailed("The webhook body is not a valid payment event.", errors=errors) from error
    return event
