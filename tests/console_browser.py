"""Driving the web console in Debian's headless Chromium through Playwright.

Playwright rather than Selenium: it waits for what the user would see (``expect(...).to_have_text``
retries until a timeout) instead of hand-written sleeps, can intercept a request (to drop the answer
of a POST that did reach the API, as a flaky network would) and counts every request the page makes.
It drives the system browser: ``playwright install`` (a browser download) is never run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
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


def require_chromium() -> None:
    """Skip only on a developer machine without Chromium; CI must run the browser tests."""
    if not CHROMIUM.exists() and os.environ.get("CI") != "true":
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium); `apt-get install chromium` to run the browser tests")


@contextmanager
def artifacts_on_failure(page, name: str) -> Iterator[None]:
    """A screenshot and the page's HTML in test-artifacts/ when the block fails, then re-raise."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        stem = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        try:
            page.screenshot(path=f"{stem}.png", full_page=True)
            Path(f"{stem}.html").write_text(page.content())
        except Exception as error:  # the page itself may be gone; the original failure matters more
            Path(f"{stem}.screenshot-failed.txt").write_text(repr(error))
        raise
