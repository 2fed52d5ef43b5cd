"""The browser-binding cookie of a bank-linking attempt (scoped to /bank, apart from sign-in's)."""

from __future__ import annotations

from aws_lambda_powertools.shared.cookies import Cookie, SameSite

from payrail.auth.oauth_state import BINDING_COOKIE, STATE_TTL_SECONDS


def binding_cookie(binding: str) -> Cookie:
    # SameSite=Lax: the bank's redirect back is a top-level GET navigation, which Lax cookies accompany.
    return Cookie(
        BINDING_COOKIE, binding, path="/bank", secure=True, http_only=True, max_age=STATE_TTL_SECONDS, same_site=SameSite.LAX_MODE
    )


def cleared_binding_cookie() -> Cookie:
    return Cookie(BINDING_COOKIE, "", path="/bank", secure=True, http_only=True, max_age=0, same_site=SameSite.LAX_MODE)
