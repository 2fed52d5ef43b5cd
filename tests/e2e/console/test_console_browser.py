"""The web console in a real browser (Debian chromium, headless) against the running local stack:
sign in, send payouts and watch them settle, retry safely, link a bank and see its transactions,
register a webhook endpoint and watch its deliveries."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from playwright.sync_api import expect
from standardwebhooks import Webhook

from scenarios import payouts
from tests.e2e.conftest import RunningStack
from tests.support import wait_for
from tests.webhooks_support import Recorder

pytestmark = pytest.mark.e2e


# What every console user is funded with (through the sandbox provider's funding webhook) on sign-in.
FUNDING = {"ZAR": 10**8, "UGX": 10**8, "USD": 10**8}


def sign_in(page, email: str) -> None:
    """Sign in through the console; the user is then funded in every currency the tests pay in."""
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_contain_text(email)
    fund(page, FUNDING)


def fund(page, amounts: dict[str, int]) -> None:
    """Fund the signed-in user end to end (the sandbox provider's signed funding.received webhook),
    as the session the console holds: its access cookie is the same token a Bearer header carries."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "__Host-payrail_access")
    base_url = page.url.split("/", 3)[:3]
    with httpx.Client(base_url="/".join(base_url), timeout=30) as client:
        payouts.fund(client, {"authorization": f"Bearer {token}"}, amounts)


def fill_payout(page, amount: str, reference: str, name: str = "Thandi Nkosi", currency: str = "ZAR", account: str = "62001234567") -> None:
    page.get_by_label("Amount").fill(amount)
    page.get_by_label("Currency").select_option(currency)
    page.get_by_label("Beneficiary name").fill(name)
    page.get_by_label("Account number").fill(account)
    page.get_by_label("Bank code").fill("250655")
    page.get_by_label("Reference").fill(reference)


def payouts_through_api(page) -> list[dict]:
    """The signed-in user's payouts as the API lists them (the page's own cookie session)."""
    response = page.context.request.get("/payouts?limit=100")
    assert response.status == 200, response.text()
    return list(response.json()["items"])


def posts_to_payouts(page) -> list:
    sent: list = []
    page.on("request", lambda r: sent.append(r) if r.method == "POST" and r.url.endswith("/payouts") else None)
    return sent


def new_email() -> str:
    return f"console-{uuid.uuid4().hex[:10]}@example.com"


def test_sign_in_refresh_and_sign_out_with_secure_http_only_cookies(page) -> None:
    # Given a user signs in through the sandbox identity provider
    email = new_email()
    sign_in(page, email)
    # Then the session is held only in HttpOnly cookies that Chromium accepted as Secure on http://127.0.0.1
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["__Host-payrail_access"]["httpOnly"]
    assert cookies["__Host-payrail_access"]["secure"]
    assert cookies["__Secure-payrail_refresh"]["path"] == "/auth"
    assert page.evaluate("() => [document.cookie, Object.keys(localStorage).length, Object.keys(sessionStorage).length]") == ["", 0, 0]
    # When the short-lived access cookie is gone but the session is not
    page.context.clear_cookies(name="__Host-payrail_access")
    page.reload()
    # Then the console refreshes the session silently (a cookie POST carrying the page's Origin)
    expect(page.locator("#who")).to_contain_text(email)
    assert "__Host-payrail_access" in {c["name"] for c in page.context.cookies()}
    # When they sign out
    page.get_by_role("button", name="Sign out").click()
    # Then the console says so and the API no longer knows them
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#sign-in-status")).to_have_text("You are signed out.")
    assert page.context.request.get("/auth/me").status == 401


def test_a_payout_is_created_once_on_a_double_click_and_turns_paid(page) -> None:
    # Given a signed-in user who fills in the payout form
    sign_in(page, new_email())
    posts = posts_to_payouts(page)
    fill_payout(page, "1,250.5", "Invoice 1042")
    # When they double-click "Send payout"
    page.get_by_role("button", name="Send payout").dblclick()
    # Then the console confirms one payout of exactly 125050 minor units
    expect(page.locator("#payout-form-status")).to_contain_text("Payout of 1,250.50 ZAR to Thandi Nkosi created")
    row = page.locator("#payout-rows tr", has_text="Invoice 1042")
    expect(row).to_have_count(1)
    # And the browser sent one request, and the API holds one payout
    assert len(posts) == 1
    assert json.loads(posts[0].post_data)["amount"] == 125050
    listed = payouts_through_api(page)
    assert [(p["reference"], p["amount"], p["currency"]) for p in listed] == [("Invoice 1042", 125050, "ZAR")]
    # And its status badge follows the payout until the provider's webhook says it is paid
    expect(row.locator(".badge")).to_have_text("paid")
    expect(page.locator("#announcer")).to_contain_text("is now paid")


def test_shillings_have_no_minor_unit_in_the_console(page) -> None:
    # Given a signed-in user paying in UGX, which ISO 4217 gives no minor unit
    sign_in(page, new_email())
    posts = posts_to_payouts(page)
    # When they type 125.50 UGX, the console refuses it before sending anything
    fill_payout(page, "125.50", "School fees", currency="UGX")
    page.get_by_role("button", name="Send payout").click()
    expect(page.locator("#amount-error")).to_have_text("UGX has no minor unit: use whole amounts.")
    assert posts == []
    # When they type 12,550 UGX, it is sent as 12550 and shown as 12,550 UGX (never "125.50 UGX")
    page.get_by_label("Amount").fill("12,550")
    page.get_by_role("button", name="Send payout").click()
    expect(page.locator("#payout-form-status")).to_contain_text("Payout of 12,550 UGX to Thandi Nkosi created")
    row = page.locator("#payout-rows tr", has_text="School fees")
    expect(row.locator("td.num")).to_have_text("12,550 UGX")
    assert [json.loads(p.post_data)["amount"] for p in posts] == [12550]
    assert [(p["amount"], p["amount_decimal"]) for p in payouts_through_api(page)] == [(12550, "12550")]


def test_a_retry_after_a_lost_answer_reuses_the_key_and_creates_nothing_twice(page) -> None:
    # Given a signed-in user whose network fails: the first POST /payouts reaches the API, which
    # creates the payout, but the answer is lost, and every other request to /payouts fails too
    sign_in(page, new_email())
    posts = posts_to_payouts(page)
    outage = {"on": True}
    dropped: list[int] = []

    def flaky_network(route) -> None:
        if not outage["on"]:
            route.continue_()
            return
        if route.request.method == "POST" and not dropped:
            route.fetch()
            dropped.append(1)
        route.abort("connectionreset")

    page.route(re.compile(r"/payouts(\?.*)?$"), flaky_network)
    fill_payout(page, "75", "Rent March")
    page.get_by_role("button", name="Send payout").click()
    # Then the console says the outcome is unknown, that retrying is safe, and that the API is unreachable
    expect(page.locator("#payout-form-status")).to_contain_text("may or may not exist")
    expect(page.get_by_role("alert")).to_contain_text("cannot be reached")
    assert dropped == [1]
    outage["on"] = False
    # When they press Send again with the same details
    page.get_by_role("button", name="Send payout").click()
    # Then the same Idempotency-Key went twice, the API replayed the original, and there is one payout
    expect(page.locator("#payout-form-status")).to_contain_text("it had already been created")
    expect(page.get_by_role("alert")).to_be_hidden()
    keys = [p.headers["idempotency-key"] for p in posts]
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert [p["reference"] for p in payouts_through_api(page)] == ["Rent March"]
    # And a different payout afterwards gets a fresh key
    fill_payout(page, "80", "Rent April")
    page.get_by_role("button", name="Send payout").click()
    expect(page.locator("#payout-rows tr", has_text="Rent April")).to_have_count(1)
    assert posts[2].headers["idempotency-key"] != keys[0]


def test_a_payout_the_provider_refuses_shows_failed_with_its_reason(page) -> None:
    # Given a signed-in user pays an account the sandbox provider refuses (numbers starting 0000: closed)
    sign_in(page, new_email())
    fill_payout(page, "42.00", "Closed account", currency="USD", account="0000123456")
    page.get_by_role("button", name="Send payout").click()
    # Then the row turns failed and says why, and the change is announced
    row = page.locator("#payout-rows tr", has_text="Closed account")
    expect(row.locator(".badge")).to_have_text("failed")
    reason = payouts_through_api(page)[0]["failure_reason"]
    assert reason
    expect(row.locator(".failure")).to_have_text(reason)
    expect(page.locator("#announcer")).to_contain_text("is now failed")


def test_invalid_input_is_caught_before_anything_is_sent(page) -> None:
    sign_in(page, new_email())
    posts = posts_to_payouts(page)
    # Given an amount with three decimals and an account number with a space
    fill_payout(page, "12.345", "Invoice 7")
    page.get_by_label("Account number").fill("6200 1234")
    # When the user submits with the keyboard
    page.get_by_label("Reference").press("Enter")
    # Then each field says what is wrong, the first one has focus, and nothing was sent
    expect(page.locator("#amount-error")).to_have_text("Use at most 2 decimal places.")
    expect(page.locator("#account-number-error")).to_contain_text("letters or digits")
    expect(page.get_by_label("Amount")).to_be_focused()
    expect(page.get_by_label("Amount")).to_have_attribute("aria-invalid", "true")
    assert posts == []


def test_polling_pauses_while_the_tab_is_hidden(page) -> None:
    sign_in(page, new_email())
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if r.method == "GET" and "/payouts?" in r.url else None)

    def set_visibility(state: str) -> None:
        page.evaluate(
            """state => {
                Object.defineProperty(document, "visibilityState", {value: state, configurable: true});
                document.dispatchEvent(new Event("visibilitychange"));
            }""",
            state,
        )

    # Given polling just restarted at its fastest pace (a visible tab polls at once, then after 1 s)
    set_visibility("visible")
    page.wait_for_timeout(300)
    # When the tab is hidden for four seconds
    set_visibility("hidden")
    hidden_from = len(polls)
    page.wait_for_timeout(4000)
    # Then no poll went out (at the fastest pace, two or more would have)
    assert len(polls) == hidden_from
    # And it polls again as soon as the tab is visible
    set_visibility("visible")
    page.wait_for_timeout(1000)
    assert len(polls) > hidden_from


def test_link_a_sandbox_bank_sync_it_and_see_its_transactions(page) -> None:
    # Given a signed-in user links the sandbox bank (its consent page redirects straight back)
    sign_in(page, new_email())
    page.get_by_role("button", name="Link a sandbox bank").click()
    connection = page.locator("#connections li")
    expect(connection).to_have_count(1)
    expect(connection).to_contain_text("Not synced yet.")
    # When they sync it from the keyboard
    connection.get_by_role("button", name="Sync now").focus()
    page.keyboard.press("Enter")
    # Then the last sync summary appears and the 15 sandbox transactions are listed
    expect(connection.locator(".sync-summary")).to_contain_text("15 new")
    expect(page.locator("#transaction-rows tr")).to_have_count(15)
    expect(page.locator("#announcer")).to_contain_text("Sync finished")
    # And the polling re-renders never took the keyboard focus away from the button
    expect(connection.get_by_role("button", name="Sync now")).to_be_focused()


# Amounts as a person types them, and the exact minor units Decimal says they are.
AMOUNTS = st.one_of(
    st.integers(min_value=0, max_value=1_000_000_099).map(lambda minor: f"{minor // 100}.{minor % 100:02d}"),
    st.integers(min_value=0, max_value=10_000_001).map(str),
    st.integers(min_value=0, max_value=100_000_009).map(lambda tenths: f"{tenths // 10}.{tenths % 10}"),
    st.integers(min_value=1000, max_value=10_000_000).map(lambda whole: f"{whole:,}.{whole % 100:02d}"),
    st.text(alphabet="0123456789.,- e", max_size=12),
)


# What the console accepts: digits, optionally grouped by commas in threes, and at most as many
# decimals as the currency's ISO 4217 exponent (UGX 0, ZAR 2).
EXPONENTS = {"ZAR": 2, "UGX": 0}


def expected_minor(text: str, currency: str = "ZAR") -> int | None:
    """The reference, computed with Decimal; None where the console must refuse the input."""
    digits = EXPONENTS[currency]
    decimals = rf"(\.\d{{1,{digits}}})?" if digits else ""
    value = text.strip()
    if not re.fullmatch(rf"(\d+|\d{{1,3}}(,\d{{3}})+){decimals}", value, re.ASCII):
        return None
    minor = Decimal(value.replace(",", "")).scaleb(digits)
    return int(minor) if 0 < minor <= 1_000_000_000 else None


def test_amount_parsing_is_exact_for_every_typed_amount(page, stack: RunningStack) -> None:
    # Given the console's own money module, loaded in the browser
    page.goto("/")
    module = page.evaluate("() => document.querySelector('script[type=module]').src.replace('app.js', 'money.js')")
    cases: list[str] = ["0.29", "0.1", "1.10", "19.99", "10000000.00", "10000000.01", "0", "0.00", "01.5", ".5", "5.", "1,25.00", "1e3"]

    @settings(max_examples=300, deadline=None, database=None)
    @given(AMOUNTS)
    def collect(text: str) -> None:
        cases.append(text)

    collect()
    for currency in EXPONENTS:
        # When it parses every case as an amount in rand (2 digits), then in shillings (no minor unit)
        parsed = page.evaluate(
            """async ([url, cases, currency]) => {
                const money = await import(url);
                return cases.map(c => { const r = money.parseAmount(c, currency); return r.ok ? r.minor : null; });
            }""",
            [module, cases, currency],
        )
        # Then each result is exactly what Decimal says (or a refusal where the API would refuse)
        assert dict(zip(cases, parsed, strict=True)) == {case: expected_minor(case, currency) for case in cases}
    # And formatting minor units back gives the amount in canonical form, at each ISO 4217 exponent
    formatted = page.evaluate(
        """async ([url, values]) => {
            const m = await import(url);
            return ["ZAR", "UGX", "KWD"].map(currency => values.map(v => m.formatMinor(v, currency)));
        }""",
        [module, [0, 5, 29, 125050, -2999, 1_000_000_000]],
    )
    assert formatted == [
        ["0.00", "0.05", "0.29", "1,250.50", "-29.99", "10,000,000.00"],
        ["0", "5", "29", "125,050", "-2,999", "1,000,000,000"],
        ["0.000", "0.005", "0.029", "125.050", "-2.999", "1,000,000.000"],
    ]


def test_the_balance_is_shown_above_the_form_and_a_payout_beyond_it_is_refused_next_to_the_amount(page) -> None:
    # Given a signed-in user, funded with 1,000,000.00 ZAR (every console user is, on sign-in)
    sign_in(page, new_email())
    balance = page.locator("#balance-list li[data-currency=ZAR]")
    expect(balance).to_contain_text("1,000,000.00 ZAR")
    # When they ask for more than that
    posts = posts_to_payouts(page)
    fill_payout(page, "2000000", "Too much")
    page.get_by_role("button", name="Send payout").click()
    # Then the answer is next to the amount, naming what is available, and no payout exists
    expect(page.locator("#amount-error")).to_have_text("Insufficient funds: 1,000,000.00 ZAR available.")
    assert len(posts) == 1
    assert payouts_through_api(page) == []
    # When they add funds through the sandbox provider (the dev stage shows the button)
    page.get_by_label("Sandbox deposit").fill("1500000")
    page.get_by_label("Deposit in").select_option("ZAR")
    page.get_by_role("button", name="Add funds (sandbox)").click()
    # Then the balance shows them once the provider's webhook is in, and the ledger lists the funding
    expect(balance).to_contain_text("2,500,000.00 ZAR")
    expect(page.locator("#ledger-rows tr[data-type=funding]")).to_have_count(2)
    # And the same payout now goes through, its amount reserved in the ledger under the balance
    page.get_by_role("button", name="Send payout").click()
    expect(page.locator("#payout-form-status")).to_contain_text("created")
    expect(page.locator("#ledger-rows tr[data-type=reserve]")).to_have_count(1)
    expect(balance).to_have_text("500,000.00 ZAR available · 2,000,000.00 ZAR reserved")


@pytest.fixture
def receiver() -> Iterator[Recorder]:
    """A webhook receiver on loopback (the local stack delivers to loopback addresses)."""
    recorder = Recorder()
    yield recorder
    recorder.stop()


def endpoints_through_api(page) -> list[dict]:
    response = page.context.request.get("/webhook-endpoints")
    assert response.status == 200, response.text()
    return list(response.json()["items"])


def storage_and_script_cookies(page) -> list:
    return page.evaluate("() => [document.cookie, JSON.stringify(localStorage), JSON.stringify(sessionStorage)]")


def test_a_webhook_endpoint_shows_its_secret_once_its_signed_deliveries_redelivers_and_is_disabled(page, receiver: Recorder) -> None:
    # Given a signed-in user whose browser lets the page use the clipboard
    sign_in(page, new_email())
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    logged: list[str] = []
    page.on("console", lambda message: logged.append(message.text))
    # When they register an endpoint on a loopback receiver for two event types
    page.get_by_label("Endpoint URL").fill(receiver.url + "/hooks")
    page.get_by_label("Endpoint events").fill("payout.created, payout.paid")
    page.get_by_label("Endpoint description").fill("Accounting system")
    page.get_by_role("button", name="Add endpoint").click()
    # Then its signing secret is shown, with a button that copies it to the clipboard
    shown = page.locator("#endpoint-secret-value")
    expect(shown).to_have_text(re.compile(r"^whsec_[A-Za-z0-9+/=]{40,}$"))
    secret = shown.text_content()
    assert secret
    expect(page.locator("#endpoint-secret")).to_contain_text(receiver.url + "/hooks")
    page.get_by_role("button", name="Copy secret").click()
    expect(page.locator("#endpoint-secret-status")).to_have_text("Secret copied to the clipboard.")
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    # And the endpoint is listed, enabled, with its events and description
    endpoint = page.locator("#endpoints li")
    expect(endpoint).to_have_count(1)
    expect(endpoint.locator(".endpoint-status")).to_have_text("enabled")
    expect(endpoint).to_contain_text("Events: payout.created, payout.paid")
    expect(endpoint).to_contain_text("Accounting system")
    expect(endpoint.locator(".deliveries-empty")).to_have_text("No deliveries yet.")
    # And the secret was never kept by the page nor logged
    assert all(secret not in kept for kept in storage_and_script_cookies(page))
    # When they hide it, it is gone from the page, and the API never shows it again
    page.get_by_role("button", name="Hide secret").click()
    expect(page.locator("#endpoint-secret")).to_be_hidden()
    assert secret not in page.content()
    [listed] = endpoints_through_api(page)
    assert (listed["url"], listed["events"], listed["status"], "secret" in listed) == (
        receiver.url + "/hooks",
        ["payout.created", "payout.paid"],
        "enabled",
        False,
    )
    page.reload()
    expect(page.locator("#endpoints li")).to_have_count(1)
    assert secret not in page.content()

    # When they send a payout and the provider pays it
    fill_payout(page, "12.34", "Webhook watched")
    page.get_by_role("button", name="Send payout").click()
    expect(page.locator("#payout-rows tr", has_text="Webhook watched").locator(".badge")).to_have_text("paid")
    # Then the panel shows both events delivered, each with the receiver's 2xx code
    for event_type in ("payout.created", "payout.paid"):
        row = endpoint.locator("tbody tr", has_text=event_type)
        expect(row).to_have_count(1)
        expect(row).to_have_attribute("data-outcome", "delivered")
        expect(row.locator(".badge")).to_have_text("delivered")
        expect(row.locator(".status-code")).to_have_text("202")
        expect(row.locator(".attempt")).to_have_text("1")
    # And the receiver got exactly those two, each signed with the secret the page showed
    wait_for(lambda: len(receiver.posts()) >= 2, timeout=60)
    first = receiver.posts()
    assert sorted(json.loads(post["body"])["type"] for post in first) == ["payout.created", "payout.paid"]
    for post in first:
        assert Webhook(secret).verify(post["body"], post["headers"])["id"] == post["headers"]["webhook-id"]

    # When they redeliver the payout.paid event from its row
    paid = endpoint.locator("tbody tr", has_text="payout.paid")
    event_id = paid.get_attribute("data-event-id")
    assert event_id
    paid.get_by_role("button", name="Redeliver").click()
    # Then the console says it is queued, then how the new attempt went, and lists that attempt too
    note = endpoint.locator(".endpoint-note")
    expect(note).to_have_text("Redelivered payout.paid: delivered (HTTP 202).")
    expect(endpoint.locator(f'tbody tr[data-event-id="{event_id}"]')).to_have_count(2)
    expect(page.locator("#announcer")).to_contain_text("Redelivered payout.paid")
    # And the receiver got the same event again, signed with the same secret
    wait_for(lambda: len(receiver.posts()) >= 3, timeout=60)
    again = receiver.posts()[2]
    assert Webhook(secret).verify(again["body"], again["headers"])["id"] == event_id
    assert json.loads(again["body"]) == next(json.loads(post["body"]) for post in first if post["headers"]["webhook-id"] == event_id)

    # When they disable the endpoint
    endpoint.get_by_role("button", name="Disable endpoint").click()
    # Then it shows disabled, offers to enable it, and the API agrees
    expect(endpoint.locator(".endpoint-status")).to_have_text("disabled")
    expect(note).to_have_text("Endpoint disabled: it receives no events until enabled.")
    expect(endpoint.get_by_role("button", name="Enable endpoint")).to_be_focused()
    assert [e["status"] for e in endpoints_through_api(page)] == ["disabled"]
    # And a payout paid afterwards sends it nothing
    fill_payout(page, "5", "After disabling")
    page.get_by_role("button", name="Send payout").click()
    expect(page.locator("#payout-rows tr", has_text="After disabling").locator(".badge")).to_have_text("paid")
    time.sleep(3)
    assert len(receiver.posts()) == 3

    # When they delete it (confirming the browser's question)
    page.once("dialog", lambda dialog: dialog.accept())
    endpoint.get_by_role("button", name="Delete endpoint").click()
    # Then it is gone from the panel and from the API
    expect(page.locator("#endpoints-status")).to_have_text(f"Endpoint {receiver.url}/hooks deleted.")
    expect(page.locator("#endpoints li")).to_have_count(0)
    expect(page.locator("#endpoints-empty")).to_be_visible()
    assert endpoints_through_api(page) == []
    # And nothing the page logged ever held the secret
    assert all(secret not in line for line in logged)


def test_the_secret_copy_falls_back_to_copying_the_selection_without_the_clipboard_api(page) -> None:
    # Given a browser without navigator.clipboard (as outside a secure context), whose copy
    # command is watched: what was selected when it ran, and whether it worked
    sign_in(page, new_email())
    page.evaluate(
        """() => {
            Object.defineProperty(Navigator.prototype, "clipboard", {get: () => undefined, configurable: true});
            window.copyWorks = true;
            window.copies = [];
            document.execCommand = (command) => {
                window.copies.push([command, window.getSelection().toString()]);
                return window.copyWorks;
            };
        }"""
    )
    page.get_by_label("Endpoint URL").fill("http://127.0.0.1:9/hooks")
    page.get_by_role("button", name="Add endpoint").click()
    shown = page.locator("#endpoint-secret-value")
    expect(shown).to_have_text(re.compile(r"^whsec_"))
    secret = shown.text_content()
    status = page.locator("#endpoint-secret-status")
    # When they press Copy secret, the secret is selected and copied, then the selection cleared
    page.get_by_role("button", name="Copy secret").click()
    expect(status).to_have_text("Secret copied to the clipboard.")
    assert page.evaluate("() => [window.copies, window.getSelection().toString()]") == [[["copy", secret]], ""]
    # When the browser refuses the copy command too, the secret stays selected and the console says how to copy it
    page.evaluate("() => { window.copyWorks = false; }")
    page.get_by_role("button", name="Copy secret").click()
    expect(status).to_have_text("The browser did not copy it: the secret is selected, press Ctrl+C (⌘C on a Mac).")
    assert page.evaluate("() => window.getSelection().toString()") == secret


def test_a_refused_url_or_an_unknown_event_type_is_answered_next_to_its_field(page) -> None:
    sign_in(page, new_email())
    sent: list = []
    page.on("request", lambda r: sent.append(r) if r.method == "POST" and r.url.endswith("/webhook-endpoints") else None)
    # When a user registers the cloud metadata address (link-local: refused even on the local stack)
    page.get_by_label("Endpoint URL").fill("http://169.254.169.254/latest/meta-data")
    page.get_by_role("button", name="Add endpoint").click()
    # Then the API's reason is shown next to the URL, which has the focus and is marked invalid
    expect(page.locator("#endpoint-url-error")).to_have_text(
        "The host 169.254.169.254 is a link-local address; webhook URLs must resolve to public addresses only."
    )
    expect(page.get_by_label("Endpoint URL")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Endpoint URL")).to_be_focused()
    expect(page.locator("#endpoint-form-status")).to_have_text(
        "The endpoint was not added. This URL cannot receive webhooks: the host 169.254.169.254 is a link-local address; "
        "webhook URLs must resolve to public addresses only."
    )
    # When they fix the URL but name an event type that does not exist
    page.get_by_label("Endpoint URL").fill("http://127.0.0.1:9/hooks")
    page.get_by_label("Endpoint events").fill("payout.paid, payout.shipped")
    page.get_by_role("button", name="Add endpoint").click()
    # Then the answer names the wrong one and lists the valid ones, next to the events field
    expect(page.locator("#endpoint-events-error")).to_have_text(
        "“payout.shipped” is not an event type. Input should be 'payout.created', 'payout.submitted', "
        "'payout.processing', 'payout.paid', 'payout.failed' or 'bank_connection.synced'."
    )
    expect(page.locator("#endpoint-url-error")).to_have_text("")
    expect(page.get_by_label("Endpoint URL")).to_have_attribute("aria-invalid", "false")
    expect(page.get_by_label("Endpoint events")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Endpoint events")).to_be_focused()
    # And an empty URL is caught before anything is sent
    page.get_by_label("Endpoint URL").fill("")
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.locator("#endpoint-url-error")).to_have_text("Enter the endpoint URL.")
    assert [json.loads(r.post_data) for r in sent] == [
        {"url": "http://169.254.169.254/latest/meta-data"},
        {"url": "http://127.0.0.1:9/hooks", "events": ["payout.paid", "payout.shipped"]},
    ]
    # And nothing was registered, and no secret was ever shown
    assert endpoints_through_api(page) == []
    expect(page.locator("#endpoint-secret")).to_be_hidden()
    expect(page.locator("#endpoints-empty")).to_be_visible()
