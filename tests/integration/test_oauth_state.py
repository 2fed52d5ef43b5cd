"""The OAuth state record: single use (also under concurrency), bound to the browser, short-lived."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from payrail.auth import oauth_state
from payrail.errors import ValidationFailed

from tests.support import Resources


@pytest.fixture
def table_env(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> Resources:
    resources.point_at(monkeypatch, TABLE_NAME=resources.ref("Table"))
    return resources


def test_a_state_is_consumed_once_with_its_verifier(table_env: Resources) -> None:
    attempt = oauth_state.begin("signin", "/payouts")
    consumed = oauth_state.consume("signin", attempt.state, attempt.binding)
    assert consumed.redirect_to == "/payouts"
    assert consumed.nonce == attempt.nonce
    assert oauth_state.pkce_challenge(consumed.code_verifier) == attempt.code_challenge
    with pytest.raises(ValidationFailed):
        oauth_state.consume("signin", attempt.state, attempt.binding)


def test_concurrent_callbacks_with_one_state_have_exactly_one_winner(table_env: Resources) -> None:
    attempt = oauth_state.begin("signin", "/")

    def try_consume(_: int) -> bool:
        try:
            oauth_state.consume("signin", attempt.state, attempt.binding)
        except ValidationFailed:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(try_consume, range(8)))
    assert outcomes.count(True) == 1


@pytest.mark.parametrize(
    ("state_of", "binding_of", "purpose"),
    [
        (lambda a: a.state + "x", lambda a: a.binding, "signin"),  # tampered state
        (lambda a: None, lambda a: a.binding, "signin"),  # missing state
        (lambda a: a.state, lambda a: None, "signin"),  # no browser cookie
        (lambda a: a.state, lambda a: "another-browser", "signin"),  # another browser's cookie
        (lambda a: a.state, lambda a: a.binding, "bank"),  # replayed into another flow
    ],
)
def test_a_wrong_state_cookie_or_flow_is_refused_and_the_state_survives(table_env: Resources, state_of, binding_of, purpose) -> None:
    attempt = oauth_state.begin("signin", "/")
    with pytest.raises(ValidationFailed):
        oauth_state.consume(purpose, state_of(attempt), binding_of(attempt))
    assert oauth_state.consume("signin", attempt.state, attempt.binding).redirect_to == "/"


def test_an_expired_state_is_refused_even_before_ttl_deletes_it(table_env: Resources) -> None:
    attempt = oauth_state.begin("signin", "/", now=time.time() - oauth_state.STATE_TTL_SECONDS - 1)
    with pytest.raises(ValidationFailed):
        oauth_state.consume("signin", attempt.state, attempt.binding)


def test_the_table_never_holds_the_raw_state(table_env: Resources) -> None:
    attempt = oauth_state.begin("signin", "/")
    items = table_env.client("dynamodb").scan(TableName=table_env.ref("Table"))["Items"]
    assert attempt.state not in str(items)
    assert attempt.binding not in str(items)


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example", "/\\evil.example", "javascript:alert(1)", "/ok\r\nSet-Cookie: x"]
)
def test_only_relative_redirects_are_honoured(target: str) -> None:
    with pytest.raises(ValidationFailed):
        oauth_state.safe_redirect(target)


def test_relative_redirects_pass_and_none_is_home() -> None:
    assert oauth_state.safe_redirect("/payouts?page=2") == "/payouts?page=2"
    assert oauth_state.safe_redirect(None) == "/"
