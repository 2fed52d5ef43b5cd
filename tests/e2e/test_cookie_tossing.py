"""Cookie tossing (issue 19 item 5), over HTTP on the local stack: a same-site subdomain can set
cookies for this host, so session cookies are prefixed (``__Host-`` where Path=/ allows, else
``__Secure-``) and a request carrying a session cookie twice, or next to its unprefixed name,
is refused instead of letting the first one win."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.signin import BINDING_COOKIE, finish, sign_in_tokens, start

pytestmark = pytest.mark.e2e
ACCESS, REFRESH = "__Host-payrail_access", "__Secure-payrail_refresh"


def _refused(response: httpx.Response, status: int = 401) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "more than one" in response.json()["detail"]


def _me(api: httpx.Client, cookie_header: str) -> httpx.Response:
    return api.get("/auth/me", headers={"Cookie": cookie_header})


def test_session_cookies_are_host_and_secure_prefixed(api: httpx.Client) -> None:
    # When a browser signs in
    response = finish(api, start(api, "prefixes@example.com"), accept_json=False)
    assert response.status_code == 302
    cookies = {c.split("=", 1)[0]: c.lower() for c in response.headers.get_list("set-cookie") if "max-age=0" not in c.lower()}
    # Then the access cookie is __Host-: Secure, Path=/, no Domain (no other host can set it)
    access = cookies[ACCESS]
    assert "secure" in access
    assert "path=/;" in access + ";"
    assert "domain" not in access
    # And the refresh cookie, which needs Path=/auth, is __Secure-
    assert "secure" in cookies[REFRESH]
    assert "path=/auth" in cookies[REFRESH]
    # And no unprefixed session cookie is set, only expired
    assert not {"payrail_access", "payrail_refresh"} & set(cookies)


def test_two_access_cookies_are_refused_whichever_comes_first(api: httpx.Client) -> None:
    # Given a victim's session and an attacker's session (a cookie a sibling subdomain planted)
    victim = sign_in_tokens(api, "victim@example.com")["access_token"]
    attacker = sign_in_tokens(api, "attacker@example.com")["access_token"]
    # When a request carries two unprefixed access cookies (the review's attack: the first won)
    response = _me(api, f"payrail_access={attacker}; payrail_access={victim}")
    # Then it is no session at all: an unprefixed cookie is one any sibling host can set
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    # And the victim's own prefixed cookie works alone
    assert _me(api, f"{ACCESS}={victim}").json()["email"] == "victim@example.com"
    # But a request carrying it twice, in either order, or next to the unprefixed name, is
    # refused, never served as either user
    for header in (
        f"{ACCESS}={attacker}; {ACCESS}={victim}",
        f"{ACCESS}={victim}; {ACCESS}={attacker}",
        f"{ACCESS}={victim}; payrail_access={attacker}",
    ):
        _refused(_me(api, header))


def test_two_refresh_cookies_are_refused_and_consume_nothing(api: httpx.Client, stack) -> None:
    # Given a victim's refresh token and an attacker's planted next to it
    victim = sign_in_tokens(api, "victim@example.com")["refresh_token"]
    attacker = sign_in_tokens(api, "attacker@example.com")["refresh_token"]
    origin = {"Origin": stack.api_url}
    # When a request carries two unprefixed refresh cookies, it is no refresh at all
    unprefixed = api.post("/auth/refresh", headers={**origin, "Cookie": f"payrail_refresh={attacker}; payrail_refresh={victim}"})
    assert unprefixed.status_code == 401, unprefixed.text
    # When the browser refreshes with two prefixed ones, or the prefixed next to the unprefixed, it is refused
    _refused(api.post("/auth/refresh", headers={**origin, "Cookie": f"{REFRESH}={attacker}; {REFRESH}={victim}"}))
    _refused(api.post("/auth/refresh", headers={**origin, "Cookie": f"{REFRESH}={victim}; payrail_refresh={attacker}"}))
    # And neither token was rotated by the refused requests
    for token in (victim, attacker):
        assert api.post("/auth/refresh", json={"refresh_token": token}).status_code == 200


def test_a_second_binding_cookie_at_the_callback_is_refused(api: httpx.Client) -> None:
    # Given an attacker who planted their own sign-in binding cookie next to the victim's (login CSRF)
    flow = start(api, "victim@example.com")
    assert flow.callback_url
    planted = start(api, "attacker@example.com").binding
    # When the callback arrives with both, it is refused (no session is started)
    response = api.get(
        flow.callback_url, headers={"Accept": "application/json", "Cookie": f"{BINDING_COOKIE}={flow.binding}; {BINDING_COOKIE}={planted}"}
    )
    _refused(response, 400)
    assert not any("payrail_access=" in c and "max-age=0" not in c.lower() for c in response.headers.get_list("set-cookie"))
