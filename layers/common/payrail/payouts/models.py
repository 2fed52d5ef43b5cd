"""The payout's wire shapes: what a client may send and what it gets back.

Validation is strict on purpose: an amount is an integer number of the currency's ISO 4217 minor
units (``12550`` ZAR is R125.50, ``12550`` UGX is 12,550 shillings), never a float or a string,
and free-text fields refuse control and invisible format characters, which have no business in a
beneficiary's name and break the logs and bank files they end up in.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, computed_field
from pydantic_core import PydanticCustomError

from payrail.db.payouts import StoredPayout
from payrail.domain import money
from payrail.domain.payout_status import PayoutStatus

# The ISO 4217 codes this service pays out in; each one's exponent comes from ISO 4217 (money).
Currency = money.PayoutCurrency
# One payout is at most a billion minor units (10 million rand, a billion shillings): far above
# any real payout, far below int64.
MAX_AMOUNT_MINOR = 1_000_000_000
# Idempotency-Key: 1 to 255 visible ASCII characters (no spaces, no control characters).
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"

# Free text refuses control characters (Unicode category Cc), which have no business in a
# beneficiary's name and break the logs and bank files it ends up in, and format characters (Cf:
# U+202E RIGHT-TO-LEFT OVERRIDE, U+200B ZERO WIDTH SPACE, U+FEFF, bidi isolates, tags...), which
# are invisible and let one name display as another on a statement. It may not start or end with
# whitespace. One pattern, written in character ranges only and checked against ``unicodedata``, so
# that pydantic (which enforces it) and the OpenAPI schema (which states it to clients and to the
# API fuzzer) read it the same way; a validator in front of it names the offending character.
_REFUSED_CATEGORIES = ("Cc", "Cf")


# The control and format characters of Python 3.12's Unicode database (15.0, the functions'
# runtime) and U+2028/U+2029, as ranges; a unit test scans every code point and checks that this is
# still what the runtime's database gives. Scanned at import, it took 70-80 ms of every cold start
# that validates a payout.
_CONTROL = (
    r"\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f"
    r"\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    r"\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_SPACE = r" \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
TEXT_PATTERN = rf"^[^{_CONTROL}{_SPACE}](?:[^{_CONTROL}]*[^{_CONTROL}{_SPACE}])?$"


def _no_invisible_characters(value: object) -> object:
    """Refuse a control or format character by name, before the pattern (whose own message would
    quote the whole pattern) sees it."""
    if isinstance(value, str):
        for character in value:
            category = unicodedata.category(character)
            if category in _REFUSED_CATEGORIES or category == "Cs" or character in "\u2028\u2029":
                name = unicodedata.name(character, "unnamed")
                raise PydanticCustomError(
                    "invisible_character",
                    "must not contain control or invisible formatting characters (found U+{code} {name})",
                    {"code": f"{ord(character):04X}", "name": name},
                )
    return value


# The validator comes last so that it wraps the constrained string: it still runs first, and the
# constraints stay on the string, where the JSON schema (and so the OpenAPI document) states them.
# Placed before them, it would make pydantic enforce the pattern after it, silently leaving
# ``pattern`` out of the document.
Name = Annotated[str, Field(min_length=1, max_length=140, pattern=TEXT_PATTERN), BeforeValidator(_no_invisible_characters)]
Reference = Annotated[str, Field(min_length=1, max_length=140, pattern=TEXT_PATTERN), BeforeValidator(_no_invisible_characters)]


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

    amount: StrictInt = Field(
        gt=0,
        le=MAX_AMOUNT_MINOR,
        description=(
            "An integer number of the currency's ISO 4217 minor units: 12550 ZAR is 125.50 (2 digits), "
            "12550 UGX is 12550 shillings (UGX has no minor unit), 1250 KWD would be 1.250 (3 digits). "
            "Every integer is exact in every currency, so nothing finer than a currency allows can be "
            "asked for; amount_decimal is an answer only, and a request carrying it is refused (400)."
        ),
        examples=[12550],
    )
    currency: Currency = Field(description="ISO 4217 code; its exponent is ISO 4217's", examples=["ZAR"])
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

    @computed_field(description="The amount in major units, as a decimal string: 125.50 ZAR, 12550 UGX")  # type: ignore[prop-decorator]
    @property
    def amount_decimal(self) -> str:
        return money.to_decimal_string(self.amount, self.currency)


class PayoutPage(BaseModel):
    items: list[Payout]
    next_cursor: str | None = None


PUBLIC_FIELDS = tuple(Payout.model_fields)


def public_view(payout: StoredPayout) -> Payout:
    """The stored payout as the API shows it (internal attributes left out)."""
    return Payout.model_validate(payout.model_dump(include=set(PUBLIC_FIELDS)))
