"""Money: an integer count of a currency's ISO 4217 minor units, never a float.

How many minor-unit digits a currency has (its exponent: 0 for UGX and JPY, 2 for ZAR, 3 for KWD)
comes from the ``iso4217`` package, which ships ISO 4217's own published list (List One) and is
re-released when the maintenance agency amends it; nothing here types an exponent in. (CLDR's
digits, which Babel and browsers' ``Intl`` use, differ from ISO 4217 for some currencies: IQD is
3 in ISO 4217 and 0 in CLDR, so they are not used.)

``12550`` UGX is 12,550 shillings (``"12550"``); ``12550`` ZAR is R125.50 (``"125.50"``);
``1250`` KWD is 1.250 dinars (``"1.250"``). The decimal string is built with integer arithmetic.
"""

from __future__ import annotations

from functools import cache
from typing import Literal, get_args

import iso4217

# The ISO 4217 codes this service pays out in. Their exponents come from ISO 4217 (below).
PayoutCurrency = Literal["BWP", "EUR", "GBP", "GHS", "KES", "NAD", "NGN", "TZS", "UGX", "USD", "ZAR"]
PAYOUT_CURRENCIES: tuple[str, ...] = get_args(PayoutCurrency)

ISO_4217_PUBLISHED = str(iso4217.__published__)


class UnknownCurrency(ValueError):
    """Not an ISO 4217 code with a minor unit (e.g. ``XAU``, gold, has none)."""


@cache
def exponents() -> dict[str, int]:
    """Every ISO 4217 currency that has a minor unit, with its exponent."""
    return {currency.code: int(currency.exponent) for currency in iso4217.Currency if currency.exponent is not None}


def exponent(currency: str) -> int:
    """The number of minor-unit digits ISO 4217 gives ``currency``."""
    try:
        return exponents()[currency]
    except KeyError:
        raise UnknownCurrency(f"{currency!r} is not an ISO 4217 currency with a minor unit") from None


def to_decimal_string(amount: int, currency: str) -> str:
    """``amount`` minor units of ``currency`` as a decimal string in major units: ``(12550, "ZAR")``
    is ``"125.50"``, ``(12550, "UGX")`` is ``"12550"``, ``(-5, "KWD")`` is ``"-0.005"``."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"an amount is an integer number of minor units, not {type(amount).__name__}")
    digits = exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**digits)
    return f"{sign}{whole}.{fraction:0{digits}d}" if digits else f"{sign}{whole}"
