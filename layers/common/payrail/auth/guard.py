"""The one authentication guard every protected route uses.

A request proves who it is with ``Authorization: Bearer <access token>`` or with the access-token
cookie the sign-in callback sets. A cookie travels with any request the browser makes, so a
mutating request authenticated by cookie must also come from an allowed ``Origin`` (CSRF).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from payrail.auth.tokens import Principal, verify_access_token
from payrail.errors import Forbidden, Unauthorized
from payrail.observability import logger
from payrail.settings import SignedInSettings

ACCESS_COOKIE = "payrail_access"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# How a caller proves who it is, as OpenAPI security schemes, and the ``security`` of every route
# that calls require_user: either credential will do.
SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": ACCESS_COOKIE},
}
SIGNED_IN: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"sessionCookie": []}]


def cookies_of(cookie_list: list[str] | None) -> dict[str, str]:
    """API Gateway's ``cookies`` list (``name=value`` strings) as a dict; the first of a name wins."""
    jar: dict[str, str] = {}
    for cookie in cookie_list or []:
        name, separator, value = cookie.strip().partition("=")
        if separator and name and name not in jar:
            jar[name] = value
    return jar


def authenticate(settings: SignedInSettings, method: str, headers: Mapping[str, str], cookie_list: list[str] | None) -> Principal:
    authorization = headers.get("authorization", "")
    if authorization:
        scheme, _, bearer = authorization.partition(" ")
        if scheme.lower() != "bearer" or not bearer.strip():
            raise Unauthorized("Use the Bearer scheme.")
        return verify_access_token(settings, bearer.strip())
    token = cookies_of(cookie_list).get(ACCESS_COOKIE)
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
