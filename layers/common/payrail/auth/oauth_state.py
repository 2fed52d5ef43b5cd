"""One OAuth authorization attempt: ``state``, ``nonce`` and a PKCE (S256) verifier, stored server
side with a short TTL (``payrail.db.oauth_states``), bound to the browser that started it, and
consumed exactly once.

Used by sign-in (``/auth/login`` → ``/auth/callback``) and bank linking (``/bank/connect`` →
``/bank/callback``); ``purpose`` keeps one flow's state from being replayed into the other.

The browser binding: the start of a flow sets an HttpOnly cookie with a random value whose hash
is stored in the state record; the callback must present the same cookie.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from payrail.db import oauth_states
from payrail.db.oauth_states import StoredAttempt
from payrail.errors import ValidationFailed

STATE_TTL_SECONDS = 600
BINDING_COOKIE = "__Secure-payrail_oauth"  # Secure-prefixed: its paths (/auth, /bank) rule out __Host-


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a verifier (RFC 7636)."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


# A path on this site: one leading slash (never "//host"), no backslash (browsers read it as a
# slash) and no control characters. The routes state the same pattern in their OpenAPI schema.
REDIRECT_PATTERN = re.compile(r"^/(?:[^/\\\x00-\x1f\x7f][^\\\x00-\x1f\x7f]*)?$")


def safe_redirect(redirect_to: str | None, default: str = "/") -> str:
    """A relative path on this site, or ``default``: never another origin (open redirects)."""
    if not redirect_to:
        return default
    if len(redirect_to) > 512 or not REDIRECT_PATTERN.match(redirect_to):
        raise ValidationFailed("redirect_to must be a relative path on this site.")
    return redirect_to


@dataclass(frozen=True)
class Attempt:
    """What the start of a flow hands to the browser and the provider."""

    state: str
    nonce: str
    code_challenge: str
    binding: str  # the browser cookie's value


@dataclass(frozen=True)
class ConsumedState:
    nonce: str
    code_verifier: str
    redirect_to: str
    user_id: str | None


def begin(purpose: str, redirect_to: str, user_id: str | None = None, now: float | None = None) -> Attempt:
    """Create and store a new attempt (only a digest of ``state`` is used as the key)."""
    now = now if now is not None else time.time()
    state, nonce, verifier, binding = (secrets.token_urlsafe(32) for _ in range(4))
    stored = StoredAttempt(
        purpose=purpose,
        nonce=nonce,
        code_verifier=verifier,
        redirect_to=redirect_to,
        binding=_digest(binding),
        user_id=user_id,
        expires_at=int(now) + STATE_TTL_SECONDS,
    )
    oauth_states.save(_digest(state), stored)
    return Attempt(state=state, nonce=nonce, code_challenge=pkce_challenge(verifier), binding=binding)


def consume(purpose: str, state: str | None, binding: str | None, now: float | None = None) -> ConsumedState:
    """Take the attempt for ``state`` out of the table, once. ValidationFailed (400) when the
    state is missing, unknown, already used, expired, for another flow, or from another browser."""
    if not state or len(state) > 256:
        raise ValidationFailed("The sign-in attempt is missing its state.")
    if not binding:
        raise ValidationFailed("The sign-in attempt's cookie is missing; start again from the beginning.")
    now = now if now is not None else time.time()
    stored = oauth_states.consume(_digest(state), purpose, _digest(binding), int(now))
    if stored is None:
        raise ValidationFailed("The sign-in attempt is unknown, expired, already used, or from another browser.")
    return ConsumedState(nonce=stored.nonce, code_verifier=stored.code_verifier, redirect_to=stored.redirect_to, user_id=stored.user_id)
