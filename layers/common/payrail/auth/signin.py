"""The sign-in use cases behind /auth/*: login, callback, refresh, logout and me."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

import httpx
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared.cookies import Cookie, SameSite
from pydantic import BaseModel, Field

from payrail import clock
from payrail.auth import oauth_state, oidc
from payrail.auth.guard import ACCESS_COOKIE, SECURE_PREFIX, check_origin, only_cookie, unprefixed
from payrail.auth.tokens import ACCESS_TOKEN_SECONDS, Principal, issue_access_token
from payrail.db import ratelimit, sessions
from payrail.errors import NotFound, Unauthorized, ValidationFailed
from payrail.observability import logger, metrics
from payrail.settings import AuthSettings

REFRESH_COOKIE = SECURE_PREFIX + "payrail_refresh"  # __Secure-, not __Host-: its Path is /auth
SIGNIN = "signin"


class Tokens(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105 - the token type, not a secret
    expires_in: int = ACCESS_TOKEN_SECONDS


class Profile(BaseModel):
    sub: str = Field(description="The user's id in this service")
    email: str
    name: str


@cache
def _http() -> httpx.Client:
    return httpx.Client(follow_redirects=False)


def limit(settings: AuthSettings, client_address: str) -> None:
    """Rate-limit the auth endpoints per client address (API Gateway's sourceIp, never a header)."""
    ratelimit.consume("auth", client_address or "unknown", settings.auth_rate_limit_per_minute)


def begin_login(settings: AuthSettings, redirect_to: str | None, login_hint: str | None) -> tuple[str, Cookie]:
    """The provider's authorization URL for a new attempt, and the cookie binding it to this browser."""
    target = oauth_state.safe_redirect(redirect_to)
    attempt = oauth_state.begin(SIGNIN, target)
    url = oidc.authorization_url(settings, _http(), attempt.state, attempt.nonce, attempt.code_challenge, login_hint)
    return url, binding_cookie(attempt.binding)


def complete_login(
    settings: AuthSettings, code: str | None, state: str | None, binding: str | None, provider_error: str | None
) -> tuple[Tokens, str]:
    """Validate and consume the state, exchange the code, verify the ID token, start a session.
    Returns the tokens and where to send the browser."""
    consumed = oauth_state.consume(SIGNIN, state, binding)
    if provider_error:
        raise ValidationFailed(f"The identity provider refused the sign-in: {provider_error[:100]}.")
    if not code:
        raise ValidationFailed("The callback has no code.")
    provider_tokens = oidc.exchange_code(settings, _http(), code, consumed.code_verifier)
    claims = oidc.verify_id_token(settings, _http(), provider_tokens.id_token, consumed.nonce)
    profile = oidc.profile_claims(settings, _http(), provider_tokens, claims)
    if "email" not in profile:
        # Not stored empty: every account has the address its provider vouches for.
        raise Unauthorized(
            "The identity provider shared no email address (neither in the ID token nor from UserInfo); grant the email scope."
        )
    user_id = hashlib.sha256(f"{claims['iss']}|{claims['sub']}".encode()).hexdigest()[:32]
    sessions.upsert_user(user_id, profile["email"], profile.get("name") or profile["email"], clock.text())
    issued = sessions.start_session(user_id)
    metrics.add_metric(name="SignIns", unit=MetricUnit.Count, value=1)
    logger.info("signed in", extra={"user_id": user_id, "session_id": issued.session_id})
    return _tokens(settings, issued), consumed.redirect_to


def _tokens(settings: AuthSettings, issued: sessions.Issued) -> Tokens:
    return Tokens(access_token=issue_access_token(settings, issued.user_id, issued.session_id), refresh_token=issued.refresh_token)


@dataclass(frozen=True)
class PresentedRefresh:
    token: str | None
    from_cookie: bool


def presented_refresh(
    settings: AuthSettings, method: str, headers: Mapping[str, str], cookie_list: list[str] | None, body_token: str | None
) -> PresentedRefresh:
    """The refresh token a request presents: in its JSON body (API clients) or its cookie
    (browsers, which must then send an allowed Origin)."""
    if body_token:
        return PresentedRefresh(body_token, from_cookie=False)
    from_cookie = only_cookie(cookie_list, REFRESH_COOKIE)
    if from_cookie:
        check_origin(settings, method, headers)
    return PresentedRefresh(from_cookie, from_cookie=bool(from_cookie))


def refresh(settings: AuthSettings, refresh_token: str | None) -> Tokens:
    if not refresh_token:
        raise Unauthorized("No refresh token was presented.")
    try:
        rotated = sessions.rotate(
            refresh_token,
            lambda user_id, session_id: issue_access_token(settings, user_id, session_id),
            grace_seconds=settings.refresh_reuse_grace_seconds,
        )
    except sessions.RefreshReuse:
        metrics.add_metric(name="RefreshReuseDetected", unit=MetricUnit.Count, value=1)
        logger.warning("refresh token reuse detected; session revoked")
        raise
    return Tokens(access_token=rotated.access_token, refresh_token=rotated.refresh_token)


def logout(refresh_token: str | None, principal: Principal | None) -> None:
    """Revoke the session named by the refresh token, or else by the access token."""
    session_id = sessions.session_of(refresh_token) if refresh_token else None
    session_id = session_id or (principal.session_id if principal else None)
    if not session_id:
        raise Unauthorized("Nothing identifies a session to end.")
    sessions.revoke(session_id)


def profile(principal: Principal) -> Profile:
    user = sessions.get_user(principal.user_id)
    if not user:
        raise NotFound("The signed-in user no longer exists.")
    return Profile(sub=principal.user_id, email=user.email, name=user.name)


# -------------------------------------------------------------------- cookies
def binding_cookie(binding: str) -> Cookie:
    return Cookie(
        oauth_state.BINDING_COOKIE,
        binding,
        path="/auth",
        secure=True,
        http_only=True,
        max_age=oauth_state.STATE_TTL_SECONDS,
        same_site=SameSite.LAX_MODE,
    )


def session_cookies(tokens: Tokens) -> list[Cookie]:
    """The access token for every route (``__Host-``; Lax: sent on top-level navigation back from
    the provider) and the refresh token only to /auth (``__Secure-``; Strict)."""
    return [
        Cookie(
            ACCESS_COOKIE,
            tokens.access_token,
            path="/",
            secure=True,
            http_only=True,
            max_age=tokens.expires_in,
            same_site=SameSite.LAX_MODE,
        ),
        Cookie(
            REFRESH_COOKIE,
            tokens.refresh_token,
            path="/auth",
            secure=True,
            http_only=True,
            max_age=sessions.SESSION_SECONDS,
            same_site=SameSite.STRICT_MODE,
        ),
    ]


def cleared_binding_cookie() -> Cookie:
    return Cookie(oauth_state.BINDING_COOKIE, "", path="/auth", secure=True, http_only=True, max_age=0, same_site=SameSite.LAX_MODE)


def cleared_unprefixed_cookies() -> list[Cookie]:
    """Expire the unprefixed session cookies of earlier releases, which would otherwise sit next
    to the prefixed ones (a request with both is refused) until they expire."""
    return [
        Cookie(unprefixed(ACCESS_COOKIE), "", path="/", secure=True, http_only=True, max_age=0, same_site=SameSite.LAX_MODE),
        Cookie(unprefixed(REFRESH_COOKIE), "", path="/auth", secure=True, http_only=True, max_age=0, same_site=SameSite.STRICT_MODE),
    ]


def cleared_cookies() -> list[Cookie]:
    return [
        Cookie(ACCESS_COOKIE, "", path="/", secure=True, http_only=True, max_age=0, same_site=SameSite.LAX_MODE),
        Cookie(REFRESH_COOKIE, "", path="/auth", secure=True, http_only=True, max_age=0, same_site=SameSite.STRICT_MODE),
        cleared_binding_cookie(),
        *cleared_unprefixed_cookies(),
    ]
