"""A stack deployed without a custom domain (PublicBaseUrl empty, as `make deploy ENV=dev` does)
works at the API's own execute-api URL, which no function behind the API can be told.

The API's functions run in-process behind a small stand-in for API Gateway that puts the domain a
request came to in its requestContext, as API Gateway does; every other request (the auth
function's server-side calls to the identity provider included) goes through the same stand-in.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

from scenarios.signin import sign_in_tokens
from tests.payouts_support import http_event
from tests.support import LambdaContext, Resources, function_environment_of, load_function

API = "https://abc123defg.execute-api.eu-west-1.amazonaws.com"
ROUTES = {"/auth/": "AuthFunction", "/sandbox/": "SandboxFunction", "/openapi.json": "ApiDocsFunction"}


def _gateway(handlers: dict[str, Callable[..., dict[str, Any]]]) -> httpx.MockTransport:
    def serve(request: httpx.Request) -> httpx.Response:
        assert f"https://{request.url.host}" == API, f"a call left the API: {request.url}"
        logical_id = next(fn for prefix, fn in ROUTES.items() if request.url.path.startswith(prefix))
        event = http_event(
            request.method,
            request.url.path,
            raw_body=request.content.decode() if request.content else None,
            headers={k: v for k, v in request.headers.items() if k != "cookie"},
            query=dict(_single(request.url.query.decode())) or None,
            route="/sandbox/{proxy+}" if logical_id == "SandboxFunction" else None,
        )
        event["headers"]["host"] = request.url.host
        event["requestContext"]["domainName"] = request.url.host
        cookie_header = request.headers.get("cookie")
        if cookie_header:
            event["cookies"] = [part.strip() for part in cookie_header.split(";")]
        # Powertools keeps the event being resolved on its BaseRouter class: a call the auth function
        # makes while resolving (to the identity provider) would overwrite the caller's in-process.
        saved = {name: vars(BaseRouter)[name] for name in ("current_event", "lambda_context") if name in vars(BaseRouter)}
        try:
            response = handlers[logical_id](event, LambdaContext())
        finally:
            for name, value in saved.items():
                setattr(BaseRouter, name, value)
        headers = list((response.get("headers") or {}).items()) + [("set-cookie", cookie) for cookie in response.get("cookies") or []]
        body = response.get("body") or ""
        content = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
        return httpx.Response(response["statusCode"], headers=headers, content=content)

    return httpx.MockTransport(serve)


def _single(query: str) -> list[tuple[str, str]]:
    return [(key, values[0]) for key, values in parse_qs(query, keep_blank_values=True).items()]


@pytest.fixture
def api(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    from payrail.auth import oidc, signin

    # Given the dev stage's template with the deployed values: no public URL, no extra origins
    resources = Resources(moto_endpoint, overrides={"PublicBaseUrl": "", "AllowedOrigins": ""})
    with function_environment_of(resources, *ROUTES.values()) as environment:
        assert environment["PUBLIC_BASE_URL"] == ""
        handlers = {logical_id: load_function(resources, logical_id).lambda_handler for logical_id in ROUTES.values()}
        transport = _gateway(handlers)
        monkeypatch.setattr(signin, "_http", lambda: httpx.Client(transport=transport, follow_redirects=False))
        oidc.provider.reset()  # discovery is cached per process: forget another test's issuer
        with httpx.Client(base_url=API, transport=transport) as client:
            yield client
        oidc.provider.reset()


def test_the_template_gives_the_api_functions_paths_and_no_public_url(moto_endpoint: str) -> None:
    resources = Resources(moto_endpoint, overrides={"PublicBaseUrl": "", "AllowedOrigins": ""})
    auth = resources.environment("AuthFunction")
    assert (auth["PUBLIC_BASE_URL"], auth["OIDC_ISSUER"], auth["ALLOWED_ORIGINS"]) == ("", "/sandbox/idp", "")
    assert resources.environment("BankApiFunction")["BANK_BASE_URL"] == "/sandbox/bank"


def test_the_sandbox_identity_provider_names_the_request_origin_as_its_issuer(api: httpx.Client) -> None:
    # When the discovery document is fetched at the API's execute-api URL
    discovery = api.get("/sandbox/idp/.well-known/openid-configuration").json()
    # Then every URL in it is on that origin
    assert discovery["issuer"] == f"{API}/sandbox/idp"
    assert discovery["token_endpoint"] == f"{API}/sandbox/idp/token"


def test_login_redirects_to_the_provider_with_a_callback_on_the_request_origin(api: httpx.Client) -> None:
    login = api.get("/auth/login", params={"redirect_to": "/"}, follow_redirects=False)
    assert login.status_code == 302, login.text
    location = urlsplit(login.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{API}/sandbox/idp/authorize"
    assert parse_qs(location.query)["redirect_uri"] == [f"{API}/auth/callback"]


def test_sign_in_completes_and_the_access_token_is_accepted(api: httpx.Client) -> None:
    # When a user signs in through the sandbox provider, all at the execute-api URL
    tokens = sign_in_tokens(api, "grace@example.com")
    # Then the token works on the same API
    me = api.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "grace@example.com"


def test_the_openapi_document_names_the_request_origin_as_its_server(api: httpx.Client) -> None:
    document = json.loads(api.get("/openapi.json").text)
    assert document["servers"] == [{"url": API}]
