"""Payout request validation, fingerprints and the worker's backoff: pure logic."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from payrail.errors import ValidationFailed
from payrail.payouts.models import MAX_AMOUNT_MINOR, PayoutRequest
from payrail.payouts.service import check_idempotency_key
from pydantic import ValidationError

BODY = {
    "amount": 12550,
    "currency": "ZAR",
    "beneficiary": {"name": "Thandi Nkosi", "account_number": "62001234567", "bank_code": "250655"},
    "reference": "Invoice 1042",
}


@given(st.integers(min_value=1, max_value=MAX_AMOUNT_MINOR))
def test_any_positive_integer_amount_up_to_the_maximum_is_accepted(amount: int) -> None:
    assert PayoutRequest.model_validate({**BODY, "amount": amount}).amount == amount


@given(
    st.one_of(st.floats(allow_nan=True), st.text(), st.booleans(), st.integers(max_value=0), st.integers(min_value=MAX_AMOUNT_MINOR + 1))
)
def test_no_float_string_boolean_or_out_of_range_amount_is_accepted(amount: object) -> None:
    with pytest.raises(ValidationError):
        PayoutRequest.model_validate({**BODY, "amount": amount})


def test_the_fingerprint_ignores_key_order_and_changes_with_any_field() -> None:
    reordered = dict(reversed(list(BODY.items())))
    assert PayoutRequest.model_validate(reordered).fingerprint() == PayoutRequest.model_validate(BODY).fingerprint()
    assert PayoutRequest.model_validate({**BODY, "amount": 12551}).fingerprint() != PayoutRequest.model_validate(BODY).fingerprint()
    assert (
        PayoutRequest.model_validate({**BODY, "reference": "Invoice 1043"}).fingerprint()
        != PayoutRequest.model_validate(BODY).fingerprint()
    )


@pytest.mark.parametrize("key", ["a", "~" * 255, "order-1042:retry/2", "Z" * 128])
def test_visible_ascii_keys_of_1_to_255_characters_are_accepted(key: str) -> None:
    assert check_idempotency_key(key) == key


@pytest.mark.parametrize("key", [None, "", " ", "a b", "k" * 256, "tab\there", "é", "new\nline"])
def test_missing_empty_long_or_invisible_keys_are_refused(key: str | None) -> None:
    with pytest.raises(ValidationFailed):
        check_idempotency_key(key)


def _plain_text(value: str) -> bool:
    """What a name or reference may be, said the long way: 1 to 140 characters, no control
    characters (C0, DEL, C1, line and paragraph separators), no format characters (Unicode
    category Cf: bidi overrides and isolates, zero-width characters, tags) and no surrounding
    whitespace."""
    controls = any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" or unicodedata.category(c) == "Cf" for c in value)
    return 1 <= len(value) <= 140 and not controls and value == value.strip()


@given(
    st.text(max_size=150)
    | st.sampled_from(
        [
            " Thandi",
            "Thandi ",
            "\u3000名前",
            "x\u00a0",
            "x\u00a0y",
            "a\x85b",
            "Zoë O'Brien",
            "Thandi \u202eikosN",
            "a\u200bb",
            "\ufeffx",
            "x\U000e0041y",
            "a\u00adb",
        ]
    )
)
def test_names_and_references_are_accepted_exactly_when_they_are_plain_text(value: str) -> None:
    # The one pattern pydantic enforces (and the OpenAPI document states) agrees with the rule.
    for body in ({**BODY, "reference": value}, {**BODY, "beneficiary": {**BODY["beneficiary"], "name": value}}):
        try:
            PayoutRequest.model_validate(body)
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == _plain_text(value), repr(value)


def test_the_pattern_refuses_exactly_the_control_and_format_characters_of_the_runtimes_unicode() -> None:
    # The pattern's character class is a constant (no scan at import); scanning all seventeen planes
    # of this Python's Unicode database gives exactly it.
    from payrail.payouts.models import _CONTROL, _REFUSED_CATEGORIES

    codes = [c for c in range(0x110000) if unicodedata.category(chr(c)) in _REFUSED_CATEGORIES] + [0x2028, 0x2029]
    ranges: list[list[int]] = []
    for code in sorted(codes):
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])

    def escape(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"

    assert "".join(escape(a) if a == b else f"{escape(a)}-{escape(b)}" for a, b in ranges) == _CONTROL


@pytest.mark.parametrize(("value", "code"), [("Thandi \u202eikosN", "U+202E"), ("a\u200bb", "U+200B"), ("x\ud800", "U+D800")])
def test_an_invisible_character_is_named_in_the_error(value: str, code: str) -> None:
    with pytest.raises(ValidationError) as raised:
        PayoutRequest.model_validate({**BODY, "beneficiary": {**BODY["beneficiary"], "name": value}})
    [error] = raised.value.errors()
    assert error["loc"] == ("beneficiary", "name")
    assert code in error["msg"]
