"""Signing in over HTTP the way a browser does: /auth/login → sandbox provider → /auth/callback."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx

BINDING_COOKIE = "__Secure-payrail_oauth"


@dataclass
class Flow:
    """The pieces of one sign-in attempt, for tests that tamper with them."""

    binding: str
    state: str
    authorize_url: str
    callback_url: str | None = None
    code: str | None = None


def start(api: httpx.Client, email: str, redirect_to: str = "/") -> Flow:
    """GET /auth/login; follow the provider's redirect back (without calling the callback)."""
    login = api.get("/auth/login", params={"redirect_to": redirect_to, "login_hint": email}, follow_redirects=False)
    assert login.status_code == 302, login.text
    binding = login.cookies[BINDING_COOKIE]
    authorize_url = login.headers["location"]
    state = parse_qs(urlsplit(authorize_url).query)["state"][0]
    authorize = api.get(authorize_url, follow_redirects=False)
    assert authorize.status_code == 302, authorize.text
    callback_url = authorize.headers["location"]
    code = parse_qs(urlsplit(callback_url).query).get("code", [None])[0]
    return Flow(binding=binding, state=state, authorize_url=authorize_url, callback_url=callback_url, code=code)


def finish(api: httpx.Client, flow: Flow, accept_json: bool = True) -> httpx.Response:
    """GET the callback with the browser-binding cookie, as the browser would."""
    assert flow.callback_url
    # The Cookie header is given whole: over https the client's jar also holds the binding cookie,
    # and a per-request cookie would be sent beside it, which the callback refuses as tossed.
    headers = {"Accept": "application/json"} if accept_json else {}
    headers["Cookie"] = f"{BINDING_COOKIE}={flow.binding}"
    return api.get(flow.callback_url, headers=headers, follow_redirects=False)


def sign_in_tokens(api: httpx.Client, email: str = "ada@example.com") -> dict:
    """Sign in through the sandbox identity provider; the token response (access, refresh)."""
    response = finish(api, start(api, email))
    assert response.status_code == 200, response.text
    return dict(response.json())


def sign_in(api: httpx.Client, email: str = "ada@example.com") -> str:
    """Sign in through the sandbox identity provider; returns an access token for Bearer use."""
    return str(sign_in_tokens(api, email)["access_token"])


def sign_in_patiently(api: httpx.Client, email: str = "ada@example.com", attempts: int = 5) -> str:
    """:func:`sign_in`, tried again after a refusal: on a loaded machine the sandbox identity
    provider's cold start can outlast the sign-in's own timeouts towards it (a 503, which a person
    would simply retry)."""
    for _ in range(attempts - 1):
        try:
            return sign_in(api, email)
        except AssertionError:
            time.sleep(2)
    return sign_in(api, email)
