"""The relying party's token endpoint call and UserInfo, against a fake provider (httpx MockTransport)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import httpx
import pytest
from payrail.auth import oidc
from payrail.errors import DependencyFailure, Unauthorized
from payrail.settings import OidcSettings

ISSUER = "https://idp.example"
SECRET = "s3cr:et+/ with%spaces"  # every character RFC 6749 2.3.1 makes a client encode
SETTINGS = OidcSettings(issuer=ISSUER, client_id="payrail:web", client_secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:x")


class FakeProvider:
    def __init__(self, discovery: dict[str, Any], userinfo: dict[str, Any] | None = None) -> None:
        self.discovery = {"issuer": ISSUER, "token_endpoint": f"{ISSUER}/token", **discovery}
        self.userinfo = userinfo or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self.discovery)
        if request.url.path == "/token":
            return httpx.Response(200, json={"id_token": "id.token.jwt", "access_token": "at-1", "token_type": "Bearer"})
        if request.url.path == "/userinfo":
            return httpx.Response(200, json=self.userinfo)
        return httpx.Response(404)

    def to(self, path: str) -> list[httpx.Request]:
        return [request for request in self.requests if request.url.path == path]


@pytest.fixture(autouse=True)
def _fresh_provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(oidc.parameters, "get_secret", lambda arn, max_age=None: SECRET)
    oidc.provider.reset()
    yield
    oidc.provider.reset()


def _client(fake: FakeProvider) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(fake))


@pytest.mark.parametrize(
    "supported",
    [None, ["client_secret_basic"], ["client_secret_post", "client_secret_basic"], ["private_key_jwt", "client_secret_basic"]],
)
def test_the_code_exchange_uses_form_encoded_http_basic_when_the_provider_allows_it(supported: list[str] | None) -> None:
    # Given a provider that supports client_secret_basic (or says nothing: the OIDC default)
    fake = FakeProvider({} if supported is None else {"token_endpoint_auth_methods_supported": supported})
    # When a code is exchanged
    tokens = oidc.exchange_code(SETTINGS, _client(fake), "code-1", "verifier-1")
    # Then the client id and secret travel form-urlencoded in the Basic header, not in the body
    (request,) = fake.to("/token")
    scheme, _, encoded = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    assert (unquote_plus(user), unquote_plus(password)) == ("payrail:web", SECRET)
    assert ":" not in user  # the id's own colon was encoded, so the split is unambiguous
    form = parse_qs(request.content.decode())
    assert "client_secret" not in form
    assert form["code_verifier"] == ["verifier-1"]
    assert tokens == oidc.TokenSet(id_token="id.token.jwt", access_token="at-1")


def test_the_code_exchange_posts_the_secret_when_that_is_all_the_provider_supports() -> None:
    fake = FakeProvider({"token_endpoint_auth_methods_supported": ["client_secret_post"]})
    oidc.exchange_code(SETTINGS, _client(fake), "code-1", "verifier-1")
    (request,) = fake.to("/token")
    assert "authorization" not in request.headers
    form = parse_qs(request.content.decode())
    assert form["client_id"] == ["payrail:web"]
    assert form["client_secret"] == [SECRET]


def test_a_provider_without_a_secret_based_method_is_a_clear_dependency_failure() -> None:
    fake = FakeProvider({"token_endpoint_auth_methods_supported": ["private_key_jwt"]})
    with pytest.raises(DependencyFailure, match="neither client_secret_basic nor client_secret_post"):
        oidc.exchange_code(SETTINGS, _client(fake), "code-1", "verifier-1")
    assert not fake.to("/token")


def test_userinfo_is_asked_only_for_what_the_id_token_lacks() -> None:
    fake = FakeProvider({"userinfo_endpoint": f"{ISSUER}/userinfo"}, {"sub": "u-1", "email": "info@example.com", "name": "From Info"})
    tokens = oidc.TokenSet(id_token="id.token.jwt", access_token="at-1")
    # A full ID token: no UserInfo call
    full = oidc.profile_claims(SETTINGS, _client(fake), tokens, {"sub": "u-1", "email": "id@example.com", "name": "From Id"})
    assert full == {"email": "id@example.com", "name": "From Id"}
    assert not fake.to("/userinfo")
    # An ID token without a name: UserInfo fills the name, with the access token as Bearer; the ID token's email stays
    partial = oidc.profile_claims(SETTINGS, _client(fake), tokens, {"sub": "u-1", "email": "id@example.com"})
    assert partial == {"email": "id@example.com", "name": "From Info"}
    (request,) = fake.to("/userinfo")
    assert request.headers["authorization"] == "Bearer at-1"


def test_userinfo_for_another_sub_is_refused() -> None:
    fake = FakeProvider({"userinfo_endpoint": f"{ISSUER}/userinfo"}, {"sub": "someone-else", "email": "x@example.com"})
    with pytest.raises(Unauthorized, match="sub mismatch"):
        oidc.profile_claims(SETTINGS, _client(fake), oidc.TokenSet("id.token.jwt", "at-1"), {"sub": "u-1"})


def test_a_provider_without_userinfo_gives_only_what_the_id_token_has() -> None:
    fake = FakeProvider({})
    assert oidc.profile_claims(SETTINGS, _client(fake), oidc.TokenSet("id.token.jwt", "at-1"), {"sub": "u-1", "name": "N"}) == {"name": "N"}
    assert not fake.to("/userinfo")
