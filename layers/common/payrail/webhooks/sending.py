"""How a merchant event goes out, as pure functions: its secrets, signature headers and retry timing.

* Secrets are Standard Webhooks' ``whsec_<base64>`` form (24+ random bytes; here 32); the HMAC key
  is the decoded part (:func:`payrail.webhooks.signatures.secret_bytes`, the receiver's own rule).
* Headers follow the Standard Webhooks specification: ``webhook-id`` (the event id, the same on
  every attempt, so a receiver deduplicates by it), ``webhook-timestamp`` (the attempt's Unix
  seconds) and ``webhook-signature``, one ``v1,<base64>`` entry per secret that signs: during the
  day after a rotation both the new and the previous secret, space-separated, so a receiver that
  holds either verifies.
* The retry schedule is a list of waits (the first attempt's, normally 0, then one after each
  failure). Each wait gets +-10% jitter so endpoints that failed together do not retry together.
"""

from __future__ import annotations

import base64
import random
import secrets as random_source
from collections.abc import Sequence

from payrail.webhooks.signatures import SECRET_PREFIX, SIGNATURE_VERSION, standard_signature

VERSION = "0.1.0"  # the product's version (pyproject.toml); a unit test keeps them equal
USER_AGENT = f"Payrail-Webhooks/{VERSION}"
SECRET_BYTES = 32
JITTER = 0.1


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(random_source.token_bytes(SECRET_BYTES)).decode()


def signed_headers(event_id: str, timestamp: int, body: bytes, signing_secrets: Sequence[str]) -> dict[str, str]:
    """The headers of one attempt: Standard Webhooks' three, signed by every secret given, and ours."""
    signatures = " ".join(f"{SIGNATURE_VERSION},{standard_signature(secret, event_id, timestamp, body)}" for secret in signing_secrets)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
    }


def next_wait(schedule: Sequence[int], attempt_index: int, rand: random.Random | None = None) -> float | None:
    """Seconds until try ``attempt_index`` (0-based) with jitter, or None when the schedule has no such try."""
    if attempt_index >= len(schedule):
        return None
    wait = schedule[attempt_index]
    return wait * (rand or random).uniform(1 - JITTER, 1 + JITTER) if wait else 0.0
