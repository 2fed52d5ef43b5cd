"""Sign-in over HTTP on the running local stack: the sandbox identity provider, the callback,
sessions with rotating refresh tokens, and every tampering the issue lists."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from tests.e2e.conftest import RunningStack
from tests.e2e.signin import BINDING_COOKIE, finish, sign_in_tokens, start

pytestmark = pytest.mark.e2e
REUSE_GRACE_SECONDS = 10  # AuthSettings.refresh_reuse_grace_seconds's default, which the stack uses


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _is_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_login_callback_me_refresh_reuse_and_logout(api: httpx.Client) -> None:
    # Given a user signs in through the sandbox provider
    tokens = sign_in_tokens(api, "ada.lovelace@example.com")
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] > 0
    # Then /auth/me knows them
    me = api.get("/auth/me", headers=_bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == "ada.lovelace@example.com"
    assert me.json()["name"] == "Ada Lovelace"
    # When the refresh token is rotated
    rotated = api.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert api.get("/auth/me", headers=_bearer(new["access_token"])).json()["sub"] == me.json()["sub"]
    # Then, once the reuse grace window (10 s by default) has passed, the old refresh token is
    # rejected and presenting it revokes the whole family
    time.sleep(REUSE_GRACE_SECONDS + 1.5)
    _is_problem(api.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)
    _is_problem(api.post("/auth/refresh", json={"refresh_token": new["refresh_token"]}), 401)
    # And a fresh session ends with logout: its refresh token stops working
    second = sign_in_tokens(api, "ada.lovelace@example.com")
    assert api.post("/auth/logout", json={"refresh_token": second["refresh_token"]}).status_code == 204
    _is_problem(api.post("/auth/refresh", json={"refresh_token": second["refresh_token"]}), 401)


def test_the_browser_flow_redirects_with_hardened_cookies(api: httpx.Client) -> None:
    flow = start(api, "grace@example.com", redirect_to="/payouts?page=1")
    response = finish(api, flow, accept_json=False)
    assert response.status_code == 302
    assert response.headers["location"] == "/payouts?page=1"
    cookies = {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}
    for name in ("__Host-payrail_access", "__Secure-payrail_refresh"):
        attributes = cookies[name].lower()
        assert "httponly" in attributes, cookies[name]
        assert "secure" in attributes, cookies[name]
        assert "samesite" in attributes, cookies[name]
    assert "path=/auth" in cookies["__Secure-payrail_refresh"].lower()
    access = cookies["__Host-payrail_access"].split(";")[0].split("=", 1)[1]
    assert api.get("/auth/me", cookies={"__Host-payrail_access": access}).status_code == 200


def test_the_login_redirect_carries_state_nonce_and_pkce(api: httpx.Client) -> None:
    login = api.get("/auth/login", follow_redirects=False)
    assert login.status_code == 302
    query = parse_qs(urlsplit(login.headers["location"]).query)
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert set(query["scope"][0].split()) == {"openid", "email", "profile"}
    for name in ("client_id", "redirect_uri", "state", "nonce", "code_challenge"):
        assert query[name][0], name
    binding = login.headers["set-cookie"].lower()
    assert "httponly" in binding
    assert "samesite=lax" in binding


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/path", "/\\evil.example"])
def test_an_open_redirect_is_refused_before_anything_is_stored(api: httpx.Client, target: str) -> None:
    _is_problem(api.get("/auth/login", params={"redirect_to": target}, follow_redirects=False), 400)


def test_a_tampered_state_is_refused_and_creates_no_session(api: httpx.Client) -> None:
    flow = start(api, "mallory@example.com")
    assert flow.callback_url
    tampered = flow.callback_url.replace(f"state={flow.state}", f"state={flow.state[:-2]}xx")
    response = api.get(tampered, headers={"Accept": "application/json"}, cookies={BINDING_COOKIE: flow.binding})
    _is_problem(response, 400)
    assert not response.headers.get_list("set-cookie") or all("payrail_access" not in c for c in response.headers.get_list("set-cookie"))


def test_a_missing_state_is_refused(api: httpx.Client) -> None:
    flow = start(api, "mallory@example.com")
    response = api.get(
        "/auth/callback", params={"code": flow.code}, headers={"Accept": "application/json"}, cookies={BINDING_COOKIE: flow.binding}
    )
    _is_problem(response, 400)


def test_a_callback_without_the_state_cookie_is_refused(api: httpx.Client) -> None:
    flow = start(api, "mallory@example.com")
    assert flow.callback_url
    _is_problem(api.get(flow.callback_url, headers={"Accept": "application/json"}), 400)
    _is_problem(api.get(flow.callback_url, headers={"Accept": "application/json"}, cookies={BINDING_COOKIE: "another-browser"}), 400)


def test_a_reused_state_is_refused(api: httpx.Client) -> None:
    flow = start(api, "ada@example.com")
    assert finish(api, flow).status_code == 200
    _is_problem(finish(api, flow), 400)


def test_the_provider_enforces_pkce_and_single_use_codes(api: httpx.Client, stack: RunningStack) -> None:
    # Given a real code issued by the sandbox provider for a login attempt
    flow = start(api, "ada@example.com")
    assert flow.code
    assert flow.callback_url
    redirect_uri = flow.callback_url.split("?")[0]
    secrets = stack.client("secretsmanager")
    client_secret = secrets.get_secret_value(SecretId=stack.physical("SandboxOidcClientSecret"))["SecretString"]
    form = {
        "grant_type": "authorization_code",
        "code": flow.code,
        "redirect_uri": redirect_uri,
        "client_id": "payrail-sandbox",
        "client_secret": client_secret,
    }
    # When it is redeemed without the verifier, or with a wrong one, the provider refuses
    missing = api.post("/sandbox/idp/token", data=form)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_grant"
    wrong = api.post("/sandbox/idp/token", data={**form, "code_verifier": "x" * 43})
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    # And the code was consumed by the first attempt: the genuine callback cannot use it either
    _is_problem(finish(api, flow), 401)


def test_forged_expired_and_foreign_access_tokens_are_refused(api: httpx.Client) -> None:
    genuine = sign_in_tokens(api)["access_token"]
    header = jwt.get_unverified_header(genuine)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    forged = jwt.encode(claims, "guessed-secret-" * 3, algorithm="HS256", headers={"kid": header["kid"]})
    unsigned = jwt.encode(claims, None, algorithm="none")
    for token in (forged, unsigned, genuine[:-3] + "abc", "garbage"):
        _is_problem(api.get("/auth/me", headers=_bearer(token)), 401)
    _is_problem(api.get("/auth/me"), 401)


def test_a_cookie_authenticated_write_from_another_origin_is_refused(api: httpx.Client) -> None:
    tokens = sign_in_tokens(api)
    response = api.post(
        "/auth/logout",
        cookies={"__Host-payrail_access": tokens["access_token"], "__Secure-payrail_refresh": tokens["refresh_token"]},
        headers={"Origin": "https://evil.example"},
    )
    _is_problem(response, 403)
    assert api.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 200


def test_the_provider_rotates_keys_and_sign_in_keeps_working(api: httpx.Client) -> None:
    # Given the service has already cached the provider's JWKS
    sign_in_tokens(api, "before.rotation@example.com")
    before = api.get("/sandbox/idp/jwks").json()["keys"]
    # When the provider rotates to its published next key
    rotated = api.post("/sandbox/idp/keys/rotate").json()["active_kid"]
    after = api.get("/sandbox/idp/jwks").json()["keys"]
    # Then the new active key had already been published, and a new next key is published now
    assert rotated in {k["kid"] for k in before}
    assert {k["kid"] for k in before} < {k["kid"] for k in after}
    for key in after:
        assert key["alg"] == "RS256"
        assert key["kty"] == "RSA"
        assert "d" not in key  # public halves only
    # And a sign-in whose ID token the new key signed works at once
    flow = start(api, "after.rotation@example.com")
    response = finish(api, flow)
    assert response.status_code == 200, response.text
    assert api.get("/auth/me", headers=_bearer(response.json()["access_token"])).status_code == 200


def test_the_discovery_document_looks_like_googles(api: httpx.Client, stack: RunningStack) -> None:
    document = api.get("/sandbox/idp/.well-known/openid-configuration").json()
    assert document["issuer"] == f"{stack.api_url}/sandbox/idp"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        assert document[endpoint].startswith(document["issuer"])


def test_no_secret_reaches_the_log(api: httpx.Client, stack: RunningStack) -> None:
    tokens = sign_in_tokens(api, "logcheck@example.com")
    time.sleep(0.5)
    log = stack.log()
    assert tokens["access_token"] not in log
    assert tokens["refresh_token"] not in log
