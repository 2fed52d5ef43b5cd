"""Where the API is reached: the configured public URL, or (a stack without one) each request's origin."""

from __future__ import annotations

import pytest
from payrail.http import request_origin
from payrail.settings import REQUEST_ORIGIN, AuthSettings, BankApiSettings, Once

EXECUTE_API = "https://abc123defg.execute-api.eu-west-1.amazonaws.com"
AUTH = {
    "TABLE_NAME": "t",
    "SESSION_KEYS_SECRET_ARN": "arn:session",
    "OIDC_ISSUER": "/sandbox/idp",
    "OIDC_CLIENT_ID": "payrail-sandbox",
    "OIDC_CLIENT_SECRET_ARN": "arn:client",
}


def test_without_a_public_url_a_request_is_served_at_its_own_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an auth function deployed with no public URL and its issuer as a path on this API
    for name, value in {**AUTH, "PUBLIC_BASE_URL": ""}.items():
        monkeypatch.setenv(name, value)
    settings = Once(AuthSettings)
    # When it serves a request that came to the execute-api domain
    token = REQUEST_ORIGIN.set(EXECUTE_API)
    try:
        served = settings()
    finally:
        REQUEST_ORIGIN.reset(token)
    # Then every URL it hands out or checks is on that origin
    assert served.public_base_url == EXECUTE_API
    assert served.issuer == f"{EXECUTE_API}/sandbox/idp"
    assert served.redirect_uri == f"{EXECUTE_API}/auth/callback"
    assert EXECUTE_API in served.origins


def test_a_configured_public_url_wins_over_the_request_domain() -> None:
    # Given a custom domain (prod) and the local stack's address (devstack)
    for configured in ("https://api.payrail.example.com", "http://127.0.0.1:3000"):
        settings = AuthSettings.model_validate({**AUTH, "PUBLIC_BASE_URL": configured})
        # Then a path is resolved against it once, and a request's domain changes nothing
        assert settings.issuer == f"{configured}/sandbox/idp"
        assert settings.served_at(EXECUTE_API) is settings


def test_an_absolute_url_setting_is_left_alone() -> None:
    settings = BankApiSettings.model_validate(
        {
            "TABLE_NAME": "t",
            "SESSION_KEYS_SECRET_ARN": "arn:s",
            "BANK_BASE_URL": "https://bank.example.com/api",
            "TOKENS_KEY_ID": "k",
            "BANK_SYNC_QUEUE_URL": "https://sqs/q",
            "PUBLIC_BASE_URL": "",
        }
    ).served_at(EXECUTE_API)
    assert settings.bank_base_url == "https://bank.example.com/api"
    assert settings.redirect_uri == f"{EXECUTE_API}/bank/callback"


def test_outside_a_request_nothing_is_derived(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**AUTH, "PUBLIC_BASE_URL": ""}.items():
        monkeypatch.setenv(name, value)
    assert Once(AuthSettings)().public_base_url == ""


@pytest.mark.parametrize(
    ("domain", "origin"),
    [
        ("abc123defg.execute-api.eu-west-1.amazonaws.com", EXECUTE_API),
        ("api.payrail.example.com", "https://api.payrail.example.com"),
        ("", ""),
        ("evil.com/path", ""),
        ("a b", ""),
        (None, ""),
    ],
)
def test_the_request_origin_is_https_and_the_domain_api_gateway_received_it_on(domain: str | None, origin: str) -> None:
    event = {"requestContext": {"domainName": domain}, "headers": {"host": "attacker.example"}}
    assert request_origin(event) == origin
