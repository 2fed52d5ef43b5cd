"""Signature round trips and tampering, stated as properties over arbitrary bodies, ids and secrets."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from payrail.webhooks.sending import signed_headers
from payrail.webhooks.signatures import (
    TOLERANCE_SECONDS,
    SignatureRejected,
    secret_bytes,
    sign_jwt,
    sign_standard,
    standard_signature,
    verify_jwt,
    verify_standard,
)
from standardwebhooks import Webhook, WebhookVerificationError

NOW = 1_795_363_200
bodies = st.binary(max_size=2048)
ids = st.from_regex(r"[A-Za-z0-9_:.-]{1,64}", fullmatch=True)
secrets = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=32, max_size=64)
skews = st.integers(min_value=-TOLERANCE_SECONDS, max_value=TOLERANCE_SECONDS)
# Secrets in the specification's own form, as endpoints are given them: "whsec_" + base64 of the key.
whsecs = st.binary(min_size=1, max_size=64).map(lambda key: "whsec_" + base64.b64encode(key).decode())


@given(body=bodies, webhook_id=ids, secret=secrets, skew=skews)
def test_a_standard_signature_verifies_within_the_tolerance(body: bytes, webhook_id: str, secret: str, skew: int) -> None:
    headers = sign_standard(secret, webhook_id, NOW + skew, body)
    assert verify_standard(headers, body, [secret], NOW) == webhook_id


@given(body=bodies, webhook_id=ids, secret=secrets, others=st.lists(secrets, max_size=3), position=st.integers(0, 3))
def test_any_configured_secret_verifies(body: bytes, webhook_id: str, secret: str, others: list[str], position: int) -> None:
    configured = [*others]
    configured.insert(min(position, len(configured)), secret)
    assert verify_standard(sign_standard(secret, webhook_id, NOW, body), body, configured, NOW) == webhook_id


@given(body=bodies, webhook_id=ids, secret=secrets, flip=st.integers(min_value=0))
def test_any_changed_byte_breaks_a_standard_signature(body: bytes, webhook_id: str, secret: str, flip: int) -> None:
    headers = sign_standard(secret, webhook_id, NOW, body)
    tampered = bytearray(body or b"\x00")
    tampered[flip % len(tampered)] ^= 0x01
    if bytes(tampered) == body:
        return
    with pytest.raises(SignatureRejected):
        verify_standard(headers, bytes(tampered), [secret], NOW)


@given(body=bodies, webhook_id=ids, secret=secrets, wrong=secrets)
def test_another_secret_never_verifies(body: bytes, webhook_id: str, secret: str, wrong: str) -> None:
    if secret_bytes(wrong) == secret_bytes(secret):
        return
    with pytest.raises(SignatureRejected) as rejected:
        verify_standard(sign_standard(wrong, webhook_id, NOW, body), body, [secret], NOW)
    assert rejected.value.reason == "bad_signature"


@given(
    body=bodies,
    webhook_id=ids,
    secret=secrets,
    skew=st.integers(min_value=TOLERANCE_SECONDS + 1, max_value=10**7),
    sign=st.sampled_from([-1, 1]),
)
def test_a_standard_signature_outside_the_tolerance_is_rejected(body: bytes, webhook_id: str, secret: str, skew: int, sign: int) -> None:
    with pytest.raises(SignatureRejected) as rejected:
        verify_standard(sign_standard(secret, webhook_id, NOW + sign * skew, body), body, [secret], NOW)
    assert rejected.value.reason == "stale_timestamp"


@given(body=bodies, webhook_id=ids, secret=secrets, version=st.from_regex(r"v[0-9a-z]{1,3}", fullmatch=True))
def test_only_v1_entries_are_ever_considered(body: bytes, webhook_id: str, secret: str, version: str) -> None:
    signature = standard_signature(secret, webhook_id, NOW, body)
    headers = {"webhook-id": webhook_id, "webhook-timestamp": str(NOW), "webhook-signature": f"{version},{signature}"}
    if version == "v1":
        assert verify_standard(headers, body, [secret], NOW) == webhook_id
    else:
        with pytest.raises(SignatureRejected):
            verify_standard(headers, body, [secret], NOW)


@given(body=bodies, webhook_id=ids, secret=whsecs, others=st.lists(whsecs, max_size=2))
def test_what_we_sign_the_official_library_verifies(body: bytes, webhook_id: str, secret: str, others: list[str]) -> None:
    # Every secret of a rotation signs; the reference receiver checks the timestamp against its own clock, so this signs at now.
    headers = signed_headers(webhook_id, int(time.time()), body, [*others, secret])
    Webhook(secret).verify(body, headers, json_parse=False)
    stranger = "whsec_" + base64.b64encode(secret_bytes(secret) + b"x").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(body, headers, json_parse=False)


@given(body=bodies, webhook_id=ids, secret=whsecs, skew=skews)
def test_what_the_official_library_signs_we_verify(body: bytes, webhook_id: str, secret: str, skew: int) -> None:
    signature = Webhook(secret).sign(webhook_id, datetime.fromtimestamp(NOW + skew, tz=UTC), body)
    headers = {"webhook-id": webhook_id, "webhook-timestamp": str(NOW + skew), "webhook-signature": signature}
    assert verify_standard(headers, body, [secret], NOW) == webhook_id


def test_whsec_secrets_are_base64_decoded_as_standard_webhooks_specifies() -> None:
    # The Standard Webhooks reference vector (standard-webhooks/standard-webhooks, libraries' test suites)
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    assert verify_standard(headers, body, [secret], 1614265330) == "msg_p5jXN8AQM9LWM0D4loKWxJek"


@settings(max_examples=50)
@given(body=bodies, event_id=ids, key=secrets, skew=skews)
def test_a_jwt_round_trips_and_carries_the_event_id(body: bytes, event_id: str, key: str, skew: int) -> None:
    token = sign_jwt(key, "k1", event_id, body, NOW + skew, lifetime=TOLERANCE_SECONDS + 1)
    claims = verify_jwt(f"Bearer {token}", body, {"k1": key}, NOW)
    assert claims["jti"] == event_id


@settings(max_examples=50)
@given(body=bodies, other=bodies, event_id=ids, key=secrets)
def test_a_jwt_never_verifies_another_body(body: bytes, other: bytes, event_id: str, key: str) -> None:
    if other == body:
        return
    token = sign_jwt(key, "k1", event_id, body, NOW)
    with pytest.raises(SignatureRejected) as rejected:
        verify_jwt(f"Bearer {token}", other, {"k1": key}, NOW)
    assert rejected.value.reason == "body_mismatch"
