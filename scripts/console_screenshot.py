"""The README's picture of the web console: a fresh local stack, a few payouts, a synced sandbox bank.

    .venv/bin/python scripts/console_screenshot.py docs/console.png

Drives Debian's Chromium (/usr/bin/chromium) through Playwright, like the browser tests.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from devstack.running import RunningStack  # noqa: E402
from tests.e2e.console.conftest import CHROMIUM, LAUNCH_ARGS  # noqa: E402

PAYOUTS = [
    ("1250.00", "ZAR", "Thandi Nkosi", "62001234567", "250655", "Invoice 1042"),
    ("89.99", "USD", "Grace Hopper", "000123456789", "021000021", "Conference refund"),
    ("15,000", "KES", "Wanjiru Kamau", "0110293847", "68000", "March stipend"),
    ("320.50", "ZAR", "Sipho Dlamini", "0000481516", "632005", "Deposit refund"),  # the sandbox refuses 0000...
]


def main(target: Path) -> None:
    template = (ROOT / "template.yaml").read_text()
    # No wait for the sandbox provider's webhooks, where that parameter exists, so payouts settle quickly.
    parameters = "SandboxWebhookDelaySeconds=0" if "SandboxWebhookDelaySeconds:" in template else ""
    with tempfile.TemporaryDirectory() as workdir:
        stack = RunningStack(Path(workdir), parameters=parameters)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
                page = browser.new_page(base_url=stack.api_url, viewport={"width": 1200, "height": 900})
                expect.set_options(timeout=60_000)
                page.goto("/")
                page.get_by_label("Email").fill("ada.lovelace@example.com")
                page.get_by_role("button", name="Sign in").click()
                expect(page.locator("#who")).to_contain_text("ada.lovelace@example.com")
                for amount, currency, name, account, bank_code, reference in PAYOUTS:
                    page.get_by_label("Amount").fill(amount)
                    page.get_by_label("Currency").select_option(currency)
                    page.get_by_label("Beneficiary name").fill(name)
                    page.get_by_label("Account number").fill(account)
                    page.get_by_label("Bank code").fill(bank_code)
                    page.get_by_label("Reference").fill(reference)
                    page.get_by_role("button", name="Send payout").click()
                    expect(page.locator("#payout-rows tr", has_text=reference)).to_have_count(1)
                page.get_by_role("button", name="Link a sandbox bank").click()
                page.locator("#connections li").get_by_role("button", name="Sync now").click()
                expect(page.locator("#transaction-rows tr")).to_have_count(15)
                try:
                    expect(page.locator("#payout-rows .badge-paid, #payout-rows .badge-failed")).to_have_count(len(PAYOUTS), timeout=30_000)
                except AssertionError:
                    print("payouts did not all settle; the picture shows them as they are", file=sys.stderr)
                target.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(target), full_page=True)
                browser.close()
        finally:
            stack.stop()
    print(f"wrote {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console.png"))
