"""The service's own access tokens and the one authentication guard."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from payrail.auth.guard import ACCESS_COOKIE, authenticate
from payrail.auth.tokens import AUDIENCE, issue_access_token, verify_access_token
from payrail.errors import Forbidden, Unauthorized

from tests.support import Resources

BASE = "http://127.0.0.1:3000"


@pytest.fixture
def keys(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> dict:
    resources.point_at(
        monkeypatch,
        SESSION_KEYS_SECRET_ARN=resources.ref("SessionSigningSecret"),
        PUBLIC_BASE_URL=BASE,
        ALLOWED_ORIGINS="https://app.example",
    )
    secret = resources.client("secretsmanager").get_secret_value(SecretId=resources.ref("SessionSigningSecret"))["SecretString"]
    return json.loads(secret)


def test_a_token_issued_here_verifies_to_its_principal(keys: dict) -> None:
    principal = verify_access_token(issue_access_token("user-1", "session-1"))
    assert (principal.user_id, principal.session_id) == ("user-1", "session-1")
    assert jwt.get_unverified_header(issue_access_token("u", "s"))["kid"] == keys["active_kid"]


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
def test_expired_foreign_or_incomplete_tokens_are_refused(keys: dict, change: dict) -> None:
    with pytest.raises(Unauthorized):
        verify_access_token(_forge(keys, **change))


def test_forged_tokens_are_refused(keys: dict) -> None:
    now = int(time.time())
    claims = {"iss": BASE, "aud": AUDIENCE, "sub": "u", "sid": "s", "iat": now, "exp": now + 60}
    wrong_key = jwt.encode(claims, "not-the-key-" * 4, algorithm="HS256", headers={"kid": keys["active_kid"]})
    unknown_kid = jwt.encode(claims, keys[keys["active_kid"]], algorithm="HS256", headers={"kid": "k9"})
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": keys["active_kid"]})
    tampered = _forge(keys)[:-4] + "AAAA"
    for token in (wrong_key, unknown_kid, unsigned, tampered, "not.a.jwt", ""):
        with pytest.raises(Unauthorized):
            verify_access_token(token)


def test_the_guard_takes_bearer_or_cookie_and_checks_origin_for_cookie_writes(keys: dict) -> None:
    token = issue_access_token("user-1", "session-1")
    assert authenticate("POST", {"authorization": f"Bearer {token}"}, None).user_id == "user-1"
    assert authenticate("GET", {}, [f"{ACCESS_COOKIE}={token}"]).user_id == "user-1"
    assert authenticate("POST", {"origin": "https://app.example"}, [f"{ACCESS_COOKIE}={token}"]).user_id == "user-1"
    assert authenticate("POST", {"origin": BASE}, [f"{ACCESS_COOKIE}={token}"]).user_id == "user-1"
    with pytest.raises(Forbidden):
        authenticate("POST", {"origin": "https://evil.example"}, [f"{ACCESS_COOKIE}={token}"])
    with pytest.raises(Forbidden):
        authenticate("DELETE", {}, [f"{ACCESS_COOKIE}={token}"])
    with pytest.raises(Unauthorized):
        authenticate("GET", {}, None)
    with pytest.raises(Unauthorized):
        authenticate("GET", {"authorization": f"Basic {token}"}, None)
