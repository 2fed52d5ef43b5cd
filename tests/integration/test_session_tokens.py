"""The service's own access tokens and the one authentication guard."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from payrail.auth.guard import ACCESS_COOKIE, authenticate
from payrail.auth.tokens import AUDIENCE, issue_access_token, verify_access_token
from payrail.errors import Forbidden, Unauthorized
from payrail.settings import SignedInSettings

from tests.support import Resources

BASE = "http://127.0.0.1:3000"


@pytest.fixture
def settings(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> SignedInSettings:
    resources.point_at(monkeypatch)
    return SignedInSettings(
        session_keys_secret_arn=resources.ref("SessionSigningSecret"), public_base_url=BASE, allowed_origins="https://app.example"
    )


@pytest.fixture
def keys(resources: Resources, settings: SignedInSettings) -> dict:
    secret = resources.client("secretsmanager").get_secret_value(SecretId=resources.ref("SessionSigningSecret"))["SecretString"]
    return json.loads(secret)


def test_a_token_issued_here_verifies_to_its_principal(settings: SignedInSettings, keys: dict) -> None:
    principal = verify_access_token(settings, issue_access_token(settings, "user-1", "session-1"))
    assert (principal.user_id, principal.session_id) == ("user-1", "session-1")
    assert jwt.get_unverified_header(issue_access_token(settings, "u", "s"))["kid"] == keys["active_kid"]


def _forge(keys: dict, **changes) -> str:
    now = int(time.time())
    claims = {"iss": BASE, "aud": AUDIENCE, "sub": "u", "sid": "s", "iat": now, "exp": now + 60, **changes}
    return jwt.encode(
        {k: v for k, v in claims.items() if v is not None}, keys[keys["active_kid"]], algorithm="HS256", headers={"kid": keys["active_kid"]}
    )


@pytest.mark.parametrize(
    "change",
    [{"exp": int(time.time()) - 3600}, {"aud": "another-api"}, {"iss": "https://evil.example"}, {"sid": None}, {"sub": None}],
)
def test_expired_foreign_or_incomplete_tokens_are_refused(settings: SignedInSettings, keys: dict, change: dict) -> None:
    with pytest.raises(Unauthorized):
        verify_access_token(settings, _forge(keys, **change))


def test_forged_tokens_are_refused(settings: SignedInSettings, keys: dict) -> None:
    now = int(time.time())
    claims = {"iss": BASE, "aud": AUDIENCE, "sub": "u", "sid": "s", "iat": now, "exp": now + 60}
    wrong_key = jwt.encode(claims, "not-the-key-" * 4, algorithm="HS256", headers={"kid": keys["active_kid"]})
    unknown_kid = jwt.encode(claims, keys[keys["active_kid"]], algorithm="HS256", headers={"kid": "k9"})
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": keys["active_kid"]})
    tampered = _forge(keys)[:-4] + "AAAA"
    for token in (wrong_key, unknown_kid, unsigned, tampered, "not.a.jwt", ""):
        with pytest.raises(Unauthorized):
            verify_access_token(settings, token)


def test_the_guard_takes_bearer_or_cookie_and_checks_origin_for_cookie_writes(settings: SignedInSettings, keys: dict) -> None:
    token = issue_access_token(settings, "user-1", "session-1")
    assert authenticate(settings, "POST", {"authorization": f"Bearer {token}"}, None).user_id == "user-1"
    assert authenticate(settings, "GET", {}, [f"{ACCESS_COOKIE}={token}"]).user_id == "user-1"
    assert authenticate(settings, "POST", {"origin": "https://app.example"}, [f"{ACCESS_COOKIE}={token}"]).user_id == "user-1"
    assert authenticate(settings, "POST", {"origin": BASE}, [f"{ACCESS_COOKIE}={token}"]).user_id == "user-1"
    with pytest.raises(Forbidden):
        authenticate(settings, "POST", {"origin": "https://evil.example"}, [f"{ACCESS_COOKIE}={token}"])
    with pytest.raises(Forbidden):
        authenticate(settings, "DELETE", {}, [f"{ACCESS_COOKIE}={token}"])
    with pytest.raises(Unauthorized):
        authenticate(settings, "GET", {}, None)
    with pytest.raises(Unauthorized):
        authenticate(settings, "GET", {"authorization": f"Basic {token}"}, None)
