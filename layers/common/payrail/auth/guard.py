"""The one authentication guard every protected route uses.

A request proves who it is with ``Authorization: Bearer <access token>`` or with the access-token
cookie the sign-in callback sets (``__Host-payrail_access``: Secure, Path=/, no Domain, so no
other host, not even a same-site subdomain, can set it). A request that carries a cookie name
twice, or next to its unprefixed name, is refused rather than letting the first one win, so a
cookie another host planted can never shadow (or stand in for) the session (cookie tossing).
A cookie travels with any request the browser makes, so a mutating request authenticated by
cookie must also come from an allowed ``Origin`` (CSRF).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from payrail.auth.tokens import Principal, verify_access_token
from payrail.errors import Forbidden, PayrailError, Unauthorized
from payrail.observability import logger
from payrail.settings import SignedInSettings

HOST_PREFIX, SECURE_PREFIX = "__Host-", "__Secure-"
ACCESS_COOKIE = HOST_PREFIX + "payrail_access"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# How a caller proves who it is, as OpenAPI security schemes, and the ``security`` of every route
# that calls require_user: either credential will do.
SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": ACCESS_COOKIE},
}
SIGNED_IN: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"sessionCookie": []}]


def unprefixed(name: str) -> str:
    """A cookie's name without its ``__Host-`` / ``__Secure-`` prefix (the name earlier releases used)."""
    return name.removeprefix(HOST_PREFIX).removeprefix(SECURE_PREFIX)


def only_cookie(cookie_list: list[str] | None, name: str, refuse: type[PayrailError] = Unauthorized) -> str | None:
    """The value of cookie ``name`` in API Gateway's ``cookies`` list (``name=value`` strings), or
    None; ``refuse`` when the name appears more than once or next to its unprefixed twin (names
    compared case-insensitively, as browsers compare prefixes)."""
    values: list[str] = []
    twins = 0
    for cookie in cookie_list or []:
        cookie_name, separator, value = cookie.strip().partition("=")
        if not separator:
            continue
        if cookie_name == name:
            values.append(value)
        elif cookie_name.lower() in (name.lower(), unprefixed(name).lower()):
            twins += 1
    if len(values) > 1 or (values and twins):
        raise refuse(f"The request carries more than one {unprefixed(name)} cookie, so another site may have set one; sign in again.")
    return values[0] if values else None


def authenticate(settings: SignedInSettings, method: str, headers: Mapping[str, str], cookie_list: list[str] | None) -> Principal:
    authorization = headers.get("authorization", "")
    if authorization:
        scheme, _, bearer = authorization.partition(" ")
        if scheme.lower() != "bearer" or not bearer.strip():
            raise Unauthorized("Use the Bearer scheme.")
        return verify_access_token(settings, bearer.strip())
    token = only_cookie(cookie_list, ACCESS_COOKIE)
    if not token:
        raise Unauthorized("Sign in first: no access token was presented.")
    check_origin(settings, method, headers)
    return verify_access_token(settings, token)


def check_origin(settings: SignedInSettings, method: str, headers: Mapping[str, str]) -> None:
    """A state-changing request that relies on a cookie must come from an allowed Origin (CSRF)."""
    if method.upper() in SAFE_METHODS:
        return
    origin = headers.get("origin", "").rstrip("/")
    if origin not in settings.origins:
        raise Forbidden("This request's Origin is not allowed to use the session cookie.")


def require_user(app: APIGatewayHttpResolver, settings: SignedInSettings) -> Principal:
    """The signed-in principal of the resolver's current request, or a 401/403 problem."""
    event = app.current_event
    principal = authenticate(settings, event.request_context.http.method, event.headers or {}, event.cookies)
    logger.append_keys(user_id=principal.user_id)
    return principal
