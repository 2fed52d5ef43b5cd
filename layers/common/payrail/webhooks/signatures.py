"""The two webhook signature schemes, pure functions over the raw body (no AWS, no clock of their own).

* Standard Webhooks v1: ``webhook-signature`` holds space-separated ``v<n>,<base64>`` entries;
  ``v1`` is HMAC-SHA256 over ``"{webhook-id}.{webhook-timestamp}.{raw body}"``. Any ``v1`` entry
  matching any configured secret passes (rotation without downtime); entries of any other
  version are ignored, never downgraded to. Comparison is constant-time.
* JWT: ``Authorization: Bearer <JWT>`` signed HS256 with one of the provider's keys (selected
  by ``kid``), carrying ``iat``, ``exp``, ``jti`` (the event id) and ``body_sha256`` (hex
  SHA-256 of the raw body). The algorithm is pinned: ``none`` or any other one is refused.

Both reject a timestamp more than :data:`TOLERANCE_SECONDS` from now, in either direction.
Every failure is a :class:`SignatureRejected` with a short machine-readable ``reason`` that the
receiver counts as a metric.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any

import jwt

TOLERANCE_SECONDS = 300
SIGNATURE_VERSION = "v1"
JWT_ALGORITHMS = ("HS256",)
SECRET_PREFIX = "whsec_"  # noqa: S105 (a format prefix, not a secret)


class SignatureRejected(Exception):
    """A delivery whose signature does not prove it came from the provider, unchanged and recent."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def secret_bytes(secret: str) -> bytes:
    """The HMAC key of a configured secret: Standard Webhooks' ``whsec_<base64>`` form is decoded;
    any other string (Secrets Manager's generated ones) is used as its UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error:
            pass
    return secret.encode()


def _check_timestamp(timestamp: int, now: float) -> None:
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise SignatureRejected("stale_timestamp", "The signature's timestamp is more than 5 minutes from now.")


# ------------------------------------------------------------------------ Standard Webhooks
def standard_signature(secret: str, webhook_id: str, timestamp: int | str, body: bytes) -> str:
    """The base64 ``v1`` HMAC-SHA256 of ``"{id}.{timestamp}.{body}"``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()).decode()


def sign_standard(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for a delivery signed with ``secret``."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"{SIGNATURE_VERSION},{standard_signature(secret, webhook_id, timestamp, body)}",
    }


def verify_standard(headers: Mapping[str, str], body: bytes, secrets: Iterable[str], now: float) -> str:
    """The verified ``webhook-id``, or SignatureRejected. ``headers`` have lower-case names."""
    webhook_id = headers.get("webhook-id") or ""
    raw_timestamp = headers.get("webhook-timestamp") or ""
    signature_header = headers.get("webhook-signature") or ""
    if not webhook_id or not raw_timestamp or not signature_header:
        raise SignatureRejected("missing_headers", "webhook-id, webhook-timestamp and webhook-signature are all required.")
    if not raw_timestamp.isascii() or not raw_timestamp.isdigit() or len(raw_timestamp) > 12:
        raise SignatureRejected("invalid_timestamp", "webhook-timestamp must be Unix seconds.")
    timestamp = int(raw_timestamp)
    _check_timestamp(timestamp, now)
    offered = []
    for entry in signature_header.split(" "):
        version, _, value = entry.partition(",")
        if version == SIGNATURE_VERSION and value:
            offered.append(value)
    if not offered:
        raise SignatureRejected("unsupported_version", "No v1 signature was offered.")
    keys = [secret for secret in secrets if secret]
    if not keys:
        raise SignatureRejected("no_secret", "No webhook secret is configured.")
    matched = False
    for secret in keys:
        expected = standard_signature(secret, webhook_id, raw_timestamp, body).encode()
        for candidate in offered:
            # Every pair is compared (no early exit) so timing says nothing about which one matched.
            matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise SignatureRejected("bad_signature", "The signature does not match the body.")
    return webhook_id


# ------------------------------------------------------------------------ JWT
def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def sign_jwt(key: str, kid: str, event_id: str, body: bytes, now: float, lifetime: int = TOLERANCE_SECONDS) -> str:
    """A Bearer token for a delivery of ``body`` (event ``event_id``), signed with ``key``."""
    issued = int(now)
    claims = {"iat": issued, "exp": issued + lifetime, "jti": event_id, "body_sha256": body_sha256(body)}
    return jwt.encode(claims, key, algorithm=JWT_ALGORITHMS[0], headers={"kid": kid})


def verify_jwt(authorization: str, body: bytes, keys: Mapping[str, str], now: float) -> dict[str, Any]:
    """The verified claims of ``Authorization: Bearer <JWT>``, or SignatureRejected.

    The caller still checks ``jti`` against the event id once the body has been parsed."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SignatureRejected("missing_headers", "A Bearer token or the webhook-* headers are required.")
    token = token.strip()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as error:
        raise SignatureRejected("jwt_malformed", "The token is malformed.") from error
    if header.get("alg") not in JWT_ALGORITHMS:
        raise SignatureRejected("jwt_algorithm", "The token's algorithm is not accepted.")
    key = keys.get(str(header.get("kid")))
    if not key:
        raise SignatureRejected("jwt_unknown_key", "The token is signed with an unknown key.")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=list(JWT_ALGORITHMS),
            options={"require": ["iat", "exp", "jti", "body_sha256"], "verify_iat": False, "verify_exp": False},
        )
    except jwt.MissingRequiredClaimError as error:
        raise SignatureRejected("jwt_missing_claim", f"The token has no {error.claim} claim.") from error
    except jwt.InvalidTokenError as error:
        raise SignatureRejected("bad_signature", "The token's signature or claims are not valid.") from error
    # Times are checked here against the caller's clock (PyJWT would use its own).
    iat, exp = claims["iat"], claims["exp"]
    if not isinstance(iat, int) or not isinstance(exp, int):
        raise SignatureRejected("jwt_invalid_claim", "iat and exp must be integers.")
    _check_timestamp(iat, now)
    if exp <= now:
        raise SignatureRejected("jwt_expired", "The token has expired.")
    presented = claims["body_sha256"]
    if not isinstance(presented, str) or not hmac.compare_digest(presented.lower().encode(), body_sha256(body).encode()):
        raise SignatureRejected("body_mismatch", "The token was issued for another body.")
    return claims
