"""Minor units per ISO 4217: exponents from the maintained list, decimal strings without floats."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from payrail.domain import money


@pytest.mark.parametrize(("currency", "digits"), [("UGX", 0), ("JPY", 0), ("ZAR", 2), ("USD", 2), ("KWD", 3), ("BHD", 3), ("IQD", 3)])
def test_exponents_are_iso_4217s(currency: str, digits: int) -> None:
    # IQD is 3 in ISO 4217 and 0 in CLDR (Babel, browsers' Intl): the source must be ISO's list.
    assert money.exponent(currency) == digits


def test_every_payout_currency_has_an_iso_4217_exponent() -> None:
    assert {c: money.exponent(c) for c in money.PAYOUT_CURRENCIES} == {
        "BWP": 2, "EUR": 2, "GBP": 2, "GHS": 2, "KES": 2, "NAD": 2, "NGN": 2, "TZS": 2, "UGX": 0, "USD": 2, "ZAR": 2,
    }  # fmt: skip


@pytest.mark.parametrize("currency", ["XAU", "XXX", "ZZZ", ""])
def test_a_code_without_a_minor_unit_is_refused(currency: str) -> None:
    with pytest.raises(money.UnknownCurrency):
        money.exponent(currency)


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (12550, "UGX", "12550"),
        (12550, "ZAR", "125.50"),
        (1250, "KWD", "1.250"),
        (5, "ZAR", "0.05"),
        (-2999, "USD", "-29.99"),
        (0, "BHD", "0.000"),
    ],
)
def test_decimal_strings_in_major_units(amount: int, currency: str, text: str) -> None:
    assert money.to_decimal_string(amount, currency) == text


@given(st.integers(min_value=-(10**15), max_value=10**15), st.sampled_from(sorted(money.exponents())))
def test_the_decimal_string_is_the_exact_amount_scaled_by_the_exponent(amount: int, currency: str) -> None:
    digits = money.exponent(currency)
    text = money.to_decimal_string(amount, currency)
    assert Decimal(text) == Decimal(amount).scaleb(-digits)
    assert len(text.partition(".")[2]) == digits


@pytest.mark.parametrize("amount", [1.5, True, "12"])
def test_a_non_integer_amount_is_refused(amount: object) -> None:
    with pytest.raises(TypeError):
        money.to_decimal_string(amount, "ZAR")  # type: ignore[arg-type]
