"""The auth function in-process, with its template environment."""

from __future__ import annotations

import json

import pytest

from tests.support import LambdaContext, Resources, function_environment_of, load_event, load_function


@pytest.fixture
def auth(moto_endpoint: str):
    resources = Resources(moto_endpoint, overrides={"AuthRateLimitPerMinute": "3"})
    with function_environment_of(resources, "AuthFunction"):
        yield load_function(resources, "AuthFunction").lambda_handler


def _refresh_from(source_ip: str, forwarded_for: str | None = None) -> dict:
    event = load_event("auth/refresh.json")
    event["requestContext"]["http"]["sourceIp"] = source_ip
    if forwarded_for:
        event["headers"]["x-forwarded-for"] = forwarded_for
    return event


def test_auth_endpoints_are_rate_limited_per_client_address_not_per_header(auth) -> None:
    # Given the limit is 3 a minute; three requests from one address are served (401: the token is made up)
    statuses = [auth(_refresh_from("198.51.100.7", forwarded_for=f"203.0.113.{i}"), LambdaContext())["statusCode"] for i in range(3)]
    assert statuses == [401, 401, 401]
    # When a fourth arrives from the same address, whatever X-Forwarded-For claims
    limited = auth(_refresh_from("198.51.100.7", forwarded_for="203.0.113.99"), LambdaContext())
    # Then it is refused with a problem and Retry-After
    assert limited["statusCode"] == 429
    assert int(limited["headers"]["Retry-After"]) >= 1
    assert json.loads(limited["body"])["type"] == "urn:payrail:problem:rate-limited"
    # And another address is not affected
    assert auth(_refresh_from("198.51.100.8"), LambdaContext())["statusCode"] == 401


def test_the_sample_callback_event_is_refused_cleanly(auth) -> None:
    # The sample event's state was never issued: a 400 problem, never a 500
    response = auth(load_event("auth/callback.json"), LambdaContext())
    assert response["statusCode"] == 400
    assert response["headers"]["Content-Type"] == "application/problem+json"


def test_me_without_credentials_is_401(auth) -> None:
    event = load_event("auth/me.json")
    event["headers"].pop("authorization")
    assert auth(event, LambdaContext())["statusCode"] == 401
