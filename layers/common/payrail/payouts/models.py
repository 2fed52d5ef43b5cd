"""The payout's wire shapes: what a client may send and what it gets back.

Validation is strict on purpose: an amount is an integer number of minor units (``12550`` is
R125.50), never a float or a string, and free-text fields refuse control characters, which have
no business in a beneficiary's name and break the logs and bank files they end up in.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from payrail.db.payouts import StoredPayout
from payrail.domain.payout_status import PayoutStatus

# ISO 4217 codes this service pays out in. All have two minor-unit digits.
Currency = Literal["BWP", "EUR", "GBP", "GHS", "KES", "NAD", "NGN", "TZS", "UGX", "USD", "ZAR"]
# One payout is at most 10 million major units: far above any real payout, far below int64.
MAX_AMOUNT_MINOR = 1_000_000_000
# Idempotency-Key: 1 to 255 visible ASCII characters (no spaces, no control characters).
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"

# Free text refuses control characters, which have no business in a beneficiary's name and break
# the logs and bank files it ends up in, and may not start or end with whitespace. One pattern,
# written in character ranges only, so that pydantic (which enforces it) and the OpenAPI schema
# (which states it to clients and to the API fuzzer) read it the same way.
_CONTROL = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
_SPACE = r" \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
TEXT_PATTERN = rf"^[^{_CONTROL}{_SPACE}](?:[^{_CONTROL}]*[^{_CONTROL}{_SPACE}])?$"

Name = Annotated[str, Field(min_length=1, max_length=140, pattern=TEXT_PATTERN)]
Reference = Annotated[str, Field(min_length=1, max_length=140, pattern=TEXT_PATTERN)]


class Beneficiary(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: Name = Field(description="The account holder's name", examples=["Thandi Nkosi"])
    # Local account numbers and IBANs (up to 34 characters) are letters and digits only.
    account_number: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{4,34}$")] = Field(examples=["62001234567"])
    # Branch codes, sort codes, routing numbers and BICs (8 or 11): letters and digits, 2 to 11.
    bank_code: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{2,11}$")] = Field(examples=["250655"])


class PayoutRequest(BaseModel):
    """``POST /payouts`` body."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    amount: StrictInt = Field(gt=0, le=MAX_AMOUNT_MINOR, description="Integer minor units: 12550 is 125.50", examples=[12550])
    currency: Currency = Field(description="ISO 4217 code", examples=["ZAR"])
    beneficiary: Beneficiary
    reference: Reference = Field(description="Shown on the beneficiary's statement", examples=["Invoice 1042"])

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of the validated request: the same payout asked for
        twice has the same fingerprint whatever the key order or whitespace of the body."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


class Payout(BaseModel):
    """A payout as the API shows it."""

    id: str
    status: PayoutStatus
    amount: int
    currency: str
    beneficiary: Beneficiary
    reference: str
    created_at: str
    updated_at: str
    failure_reason: str | None = None


class PayoutPage(BaseModel):
    items: list[Payout]
    next_cursor: str | None = None


PUBLIC_FIELDS = tuple(Payout.model_fields)


def public_view(payout: StoredPayout) -> Payout:
    """The stored payout as the API shows it (internal attributes left out)."""
    return Payout.model_validate(payout.model_dump(include=set(PUBLIC_FIELDS)))
