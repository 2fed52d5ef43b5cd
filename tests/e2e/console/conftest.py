"""Driving the web console in Debian's headless Chromium through Playwright.

Playwright rather than Selenium: it waits for what the user would see (``expect(...).to_have_text``
retries until a timeout) instead of hand-written sleeps, can intercept a request (to drop the answer
of a POST that did reach the API, as a flaky network would), and sees every request the page makes.
It drives the system browser: ``playwright install`` (a browser download) is never run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e.conftest import RunningStack
from tests.support import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT_MS = 60_000
LAUNCH_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test, so the page fixture knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def save_artifacts(page: Any, name: str) -> None:
    """A full-page screenshot and the page's HTML in test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    stem = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    try:
        page.screenshot(path=f"{stem}.png", full_page=True)
        Path(f"{stem}.html").write_text(page.content())
    except Exception as error:  # the page itself may be gone; the test's own failure matters more
        Path(f"{stem}.screenshot-failed.txt").write_text(repr(error))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Skip only on a developer machine without Chromium; in CI (CI=true) the browser tests must run.
    if not CHROMIUM.exists() and os.environ.get("CI") != "true":
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium); `apt-get install chromium` runs these tests")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def identity_provider_started(stack: RunningStack) -> None:
    """The sandbox identity provider's function started before the first sign-in. The API gives a
    provider 5 s to answer (payrail.auth.oidc.HTTP_TIMEOUT), which a real one meets; a local
    function's first start on a busy shared machine can take longer than that."""
    with httpx.Client(base_url=stack.api_url, timeout=120) as client:
        assert client.get("/sandbox/idp/.well-known/openid-configuration").status_code == 200


@pytest.fixture
def page(browser: Any, stack: RunningStack, identity_provider_started: None, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies) on the stack; screenshots in test-artifacts/ if the test fails."""
    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(base_url=stack.api_url, viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    script_errors: list[str] = []
    opened.on("pageerror", lambda error: script_errors.append(str(error)))
    yield opened
    report = getattr(request.node, "report_call", None)
    if report is None or report.failed:
        save_artifacts(opened, request.node.name)
    context.close()
    # An uncaught script error is a console bug even when the flow got through.
    assert script_errors == []
