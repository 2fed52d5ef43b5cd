"""The console function in-process: the page, its versioned assets, cache headers and the CSP."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from payrail import console

from tests.support import LambdaContext, Resources, function_environment_of, load_event, load_function


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.handlers: list[str] = []
        self.styles = 0
        self.references: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self.scripts.append(attributes)
        if tag == "style":
            self.styles += 1
        self.handlers += [name for name in attributes if name.startswith("on") or name == "style"]
        self.references += [value for name, value in attributes.items() if name in ("src", "href") and value]


@pytest.fixture(scope="module")
def handler(moto_endpoint: str):
    """The console touches no AWS resource, so one load serves the whole module."""
    resources = Resources(moto_endpoint)
    with function_environment_of(resources, "ConsoleFunction"):
        yield load_function(resources, "ConsoleFunction").lambda_handler


def asset_event(version: str, name: str, **headers: str) -> dict:
    event = load_event("console/asset.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/assets/{version}/{name}"
    event["pathParameters"] = {"version": version, "name": name}
    event["headers"].update(headers)
    return event


def test_the_page_is_revalidated_on_every_load_and_forbids_inline_script(handler) -> None:
    # When the browser asks for the console
    response = handler(load_event("console/index.json"), LambdaContext())
    # Then it gets HTML that is never used from cache without asking, under a CSP without inline script
    assert response["statusCode"] == 200
    headers = response["headers"]
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-cache"
    csp = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert csp["script-src"] == "'self'"
    assert csp["default-src"] == "'none'"
    assert "unsafe" not in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    # And the page itself has no inline script, inline style or event-handler attribute
    page = _Page()
    page.feed(response["body"])
    assert page.scripts == [{"type": "module", "src": f"/assets/{console.version()}/app.js"}]
    assert page.styles == 0
    assert page.handlers == []
    # And every local file it references is under the current version
    local = [ref for ref in page.references if ref.startswith("/")]
    assert local
    assert all(ref.startswith(f"/assets/{console.version()}/") for ref in local)


def test_every_file_the_page_names_is_served_immutable_with_its_type(handler) -> None:
    page = _Page()
    page.feed(handler(load_event("console/index.json"), LambdaContext())["body"])
    names = [ref.rsplit("/", 1)[1] for ref in page.references if ref.startswith("/assets/")]
    assert {"app.js", "console.css", "money.js", "payouts.js", "bank.js", "webhooks.js"} <= set(names)
    for name in names:
        response = handler(asset_event(console.version(), name), LambdaContext())
        assert response["statusCode"] == 200, name
        assert response["headers"]["Cache-Control"] == "public, max-age=31536000, immutable"
        expected = "text/css; charset=utf-8" if name.endswith(".css") else "text/javascript; charset=utf-8"
        assert response["headers"]["Content-Type"] == expected
        assert re.fullmatch(r'"[0-9a-f]{32}"', response["headers"]["ETag"])


def test_a_module_imports_only_its_siblings_so_the_version_carries_over(handler) -> None:
    # Relative imports keep the whole module graph inside one version of the assets
    # (the static files, and the module of currencies the function generates)
    modules = {path.name for path in console.STATIC.glob("*.js")} | {console.CURRENCIES_MODULE}
    imported: set[str] = set()
    for name in sorted(modules):
        body = handler(asset_event(console.version(), name), LambdaContext())["body"]
        imports = re.findall(r'from "([^"]+)"', body)
        assert all(re.fullmatch(r"\./[a-z]+\.js", found) for found in imports), (name, imports)
        imported |= {found.removeprefix("./") for found in imports}
    # And app.js reaches every other module
    assert imported | {"app.js"} == modules


def test_the_console_takes_its_currency_exponents_from_iso_4217(handler) -> None:
    # The generated currencies module is served like any asset, under the same version
    response = handler(asset_event(console.version(), console.CURRENCIES_MODULE), LambdaContext())
    assert response["statusCode"] == 200
    assert response["headers"]["Cache-Control"] == "public, max-age=31536000, immutable"
    body = response["body"]
    exponents = json.loads(re.search(r"export const EXPONENTS = (\{.*\});", body).group(1))
    payout_currencies = json.loads(re.search(r"export const PAYOUT_CURRENCIES = (\[.*\]);", body).group(1))
    # And it says what ISO 4217 says: no minor unit for UGX or JPY, three digits for KWD and BHD
    assert {c: exponents[c] for c in ("UGX", "JPY", "ZAR", "KWD", "BHD")} == {"UGX": 0, "JPY": 0, "ZAR": 2, "KWD": 3, "BHD": 3}
    assert "XAU" not in exponents  # gold has no minor unit at all
    assert sorted(payout_currencies) == sorted(["BWP", "EUR", "GBP", "GHS", "KES", "NAD", "NGN", "TZS", "UGX", "USD", "ZAR"])


def test_a_cached_copy_is_confirmed_with_304_and_no_body(handler) -> None:
    first = handler(asset_event(console.version(), "money.js"), LambdaContext())
    etag = first["headers"]["ETag"]
    again = handler(asset_event(console.version(), "money.js", **{"if-none-match": f'W/"nope", {etag}'}), LambdaContext())
    assert again["statusCode"] == 304
    assert again["body"] == ""
    assert again["headers"]["ETag"] == etag
    page = handler(load_event("console/index.json"), LambdaContext())
    event = load_event("console/index.json")
    event["headers"]["if-none-match"] = page["headers"]["ETag"]
    assert handler(event, LambdaContext())["statusCode"] == 304
    # A changed file (another ETag) is sent in full
    stale = handler(asset_event(console.version(), "money.js", **{"if-none-match": '"0000"'}), LambdaContext())
    assert stale["statusCode"] == 200


def test_an_older_version_still_gets_the_file_but_not_as_immutable(handler) -> None:
    response = handler(asset_event("0123456789ab", "app.js"), LambdaContext())
    assert response["statusCode"] == 200
    assert response["headers"]["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    ("version", "name"),
    [
        ("0123456789ab", "missing.js"),
        ("0123456789ab", "index.html"),
        ("0123456789ab", "..%2Fapp.py"),
        ("0123456789ab", ".env"),
        ("not-a-version", "app.js"),
    ],
)
def test_anything_else_is_a_404_problem(handler, version: str, name: str) -> None:
    response = handler(asset_event(version, name), LambdaContext())
    assert response["statusCode"] == 404
    assert response["headers"]["Content-Type"] == "application/problem+json"
