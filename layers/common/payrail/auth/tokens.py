"""The service's own access tokens: short-lived JWTs signed with a key from Secrets Manager.

The secret holds ``{"active_kid": "k1", "k1": "<key>", "k0": "<older key>"}``. New tokens are
signed with the active key and carry its ``kid``; verification accepts any key still in the
secret, so rotation is: add a key, make it active, remove the old one once its tokens expired.
Keys are read through Powertools Parameters, cached for five minutes.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from aws_lambda_powertools.utilities import parameters

from payrail.errors import DependencyFailure, Unauthorized
from payrail.settings import SignedInSettings

ALGORITHM = "HS256"
AUDIENCE = "payrail-api"
ACCESS_TOKEN_SECONDS = 900
LEEWAY_SECONDS = 30
KEYS_CACHE_SECONDS = 300


@dataclass(frozen=True)
class Principal:
    """Who a request is from: the user and the session (refresh-token family) it belongs to."""

    user_id: str
    session_id: str


def _keys(settings: SignedInSettings) -> tuple[str, dict[str, str]]:
    try:
        document: Any = parameters.get_secret(settings.session_keys_secret_arn, transform="json", max_age=KEYS_CACHE_SECONDS)
    except parameters.exceptions.GetParameterError as error:
        raise DependencyFailure("The session signing keys cannot be read.") from error
    keys = {kid: value for kid, value in document.items() if kid != "active_kid" and isinstance(value, str) and value}
    active = document.get("active_kid")
    if active not in keys:
        raise DependencyFailure("The session signing secret names no usable active key.")
    return active, keys


def issue_access_token(settings: SignedInSettings, user_id: str, session_id: str, now: float | None = None) -> str:
    active, keys = _keys(settings)
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": settings.public_base_url,
        "aud": AUDIENCE,
        "sub": user_id,
        "sid": session_id,
        "iat": issued,
        "exp": issued + ACCESS_TOKEN_SECONDS,
        "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode(claims, keys[active], algorithm=ALGORITHM, headers={"kid": active})


def verify_access_token(settings: SignedInSettings, token: str) -> Principal:
    """The principal of a valid token; Unauthorized for anything forged, expired or foreign."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as error:
        raise Unauthorized("The access token is malformed.") from error
    _, keys = _keys(settings)
    key = keys.get(str(header.get("kid")))
    if key is None or header.get("alg") != ALGORITHM:
        raise Unauthorized("The access token was not issued by this service.")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=settings.public_base_url,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "sub", "sid", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError as error:
        raise Unauthorized("The access token has expired.") from error
    except jwt.InvalidTokenError as error:
        raise Unauthorized("The access token is not valid.") from error
    return Principal(user_id=str(claims["sub"]), session_id=str(claims["sid"]))
