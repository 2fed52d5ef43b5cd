"""Sign-in against a spec-conformant provider (issue 19 item 10), over HTTP on the local stack.

The sandbox identity provider is switched (``PUT /sandbox/idp/behaviour``) to behave like panva's
OpenID-Certified ``oidc-provider``: ID tokens with only ``iss``/``sub``/``aud``/``exp``/``iat``/
``nonce``, profile claims from UserInfo, and a token endpoint that accepts only the client
authentication method it advertises."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.e2e.signin import finish, sign_in_tokens, start

pytestmark = pytest.mark.e2e


@pytest.fixture
def behave(api: httpx.Client) -> Iterator[Callable[..., None]]:
    """Set the sandbox provider's behaviour for one test; the default (Google-like) comes back after."""

    def put(**behaviour: object) -> None:
        response = api.put("/sandbox/idp/behaviour", json=behaviour)
        assert response.status_code == 200, response.text

    yield put
    put()


def _me(api: httpx.Client, access_token: str) -> dict:
    response = api.get("/auth/me", headers={"Authorization": f"Bearer {access_token}"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _refused(response: httpx.Response, detail_mentions: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert detail_mentions in response.json()["detail"]
    assert not any("payrail_access" in cookie for cookie in response.headers.get_list("set-cookie"))


def test_claims_missing_from_a_minimal_id_token_come_from_userinfo(api: httpx.Client, behave: Callable[..., None]) -> None:
    # Given a provider whose ID tokens carry no email or name (they are served by UserInfo)
    behave(id_token_claims="minimal", userinfo="scope")
    # When a user signs in
    tokens = sign_in_tokens(api, "grace.hopper@example.com")
    # Then the service knows their email and name all the same
    me = _me(api, tokens["access_token"])
    assert me["email"] == "grace.hopper@example.com"
    assert me["name"] == "Grace Hopper"


def test_userinfo_about_another_subject_refuses_the_sign_in(api: httpx.Client, behave: Callable[..., None]) -> None:
    # Given a provider whose UserInfo answers for another sub than the ID token's
    behave(id_token_claims="minimal", userinfo="other_sub")
    # When a user signs in, the sign-in is refused with a clear problem and no session
    _refused(finish(api, start(api, "victim@example.com")), "sub mismatch")


def test_a_provider_that_shares_no_email_anywhere_is_refused_clearly(api: httpx.Client, behave: Callable[..., None]) -> None:
    # Given a provider that gives neither an email in the ID token nor from UserInfo
    behave(id_token_claims="minimal", userinfo="sub_only")
    # When a user signs in, the sign-in is refused, saying why, instead of storing an empty email
    _refused(finish(api, start(api, "no.email@example.com")), "no email address")


def test_a_token_endpoint_that_accepts_only_client_secret_basic_works(api: httpx.Client, behave: Callable[..., None]) -> None:
    # Given a provider that authenticates clients with HTTP Basic only (the OIDC default)
    behave(client_auth_methods=["client_secret_basic"])
    # When a user signs in, the code exchange authenticates with Basic and succeeds
    tokens = sign_in_tokens(api, "basic.only@example.com")
    assert _me(api, tokens["access_token"])["email"] == "basic.only@example.com"
