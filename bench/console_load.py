"""How fast the web console loads, in Debian's headless Chromium on a fresh local stack.

    .venv/bin/python bench/console_load.py [--reloads 12]

Signs in once, then reloads the page N times and times each reload until the signed-in user and
the payout list are shown (so it includes /auth/me and GET /payouts); also prints what the browser
actually transferred: with immutable versioned assets a reload fetches only the revalidated page.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from devstack.running import RunningStack  # noqa: E402
from tests.e2e.console.conftest import CHROMIUM, LAUNCH_ARGS  # noqa: E402

LISTED = "() => !document.querySelector('#payouts-empty').hidden || document.querySelector('#payout-rows').children.length > 0"
ASSETS = """() => performance.getEntriesByType('resource').filter(r => r.name.includes('/assets/'))
    .map(r => [r.name.split('/').pop(), r.transferSize, r.encodedBodySize])"""
PAGE = "() => { const n = performance.getEntriesByType('navigation')[0]; return [n.transferSize, n.domContentLoadedEventEnd]; }"


def main(reloads: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        stack = RunningStack(Path(workdir))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
                page = browser.new_page(base_url=stack.api_url)
                expect.set_options(timeout=60_000)
                page.goto("/")
                page.get_by_label("Email").fill("bench@example.com")
                page.get_by_role("button", name="Sign in").click()
                expect(page.locator("#who")).to_contain_text("bench@example.com")
                page.wait_for_function(LISTED)
                timings = []
                for _ in range(reloads):
                    started = time.perf_counter()
                    page.reload()
                    expect(page.locator("#who")).to_contain_text("bench@example.com")
                    page.wait_for_function(LISTED)
                    timings.append((time.perf_counter() - started) * 1000)
                assets = page.evaluate(ASSETS)
                html_transfer, dom_ready = page.evaluate(PAGE)
                browser.close()
        finally:
            stack.stop()
    print(
        f"reload until signed in and payouts listed ({reloads} reloads): median {statistics.median(timings):.0f} ms, "
        f"min {min(timings):.0f} ms, max {max(timings):.0f} ms; DOMContentLoaded {dom_ready:.0f} ms"
    )
    print(f"assets: {len(assets)} files, {sum(a[2] for a in assets)} bytes in all, {sum(a[1] for a in assets)} bytes transferred on reload")
    print(f"page: {html_transfer} bytes transferred on reload (revalidated)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reloads", type=int, default=12)
    main(parser.parse_args().reloads)
