"""``make demo``: the product's story on a fresh local stack, with proof at the end.

Signs a user in through the sandbox identity provider; creates payouts (one retried with the
same key, a concurrent burst, a concurrent duplicate); watches them reach ``paid`` / ``failed``
through the sandbox's signed webhooks with a live progress line; sends forged and replayed
webhooks; links a sandbox bank and syncs it twice; injects faults (429s, 5xx, timeouts, a
mid-pagination mutation) and shows they were absorbed; registers a merchant webhook endpoint on a
loopback receiver first and shows each signed event arriving there (verified with the official
``standardwebhooks`` library); prints a summary table and exits non-zero if any invariant failed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from devstack.running import RunningStack
from scenarios import bank, payouts
from scenarios.receiver import Recorder, delivered_events, every_event_delivered
from scenarios.signin import sign_in_patiently
from scenarios.waiting import TimedOut, wait_for

ORDER = ("pending", "submitted", "processing", "paid", "failed")
FINAL = payouts.FINAL
# Merchant webhook retries compressed for the demo (a template parameter): 1 s, 2 s, then 5 s.
STACK_PARAMETERS = "WebhookRetrySchedule=0,1,2,5"


class Story:
    """Prints each step and keeps the checks that decide the exit code."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.failures: list[str] = []
        self.tty = sys.stdout.isatty()

    def step(self, text: str) -> None:
        print(f"\n▶ {text}", flush=True)

    def check(self, ok: bool, text: str) -> bool:
        print(f"  {'✓' if ok else '✗'} {text}", flush=True)
        if not ok:
            self.failures.append(text)
        return ok

    def progress(self, text: str, done: bool = False) -> None:
        if self.tty:
            print(f"\r  … {text}\033[K", end="\n" if done else "", flush=True)
        elif done:
            print(f"  … {text}", flush=True)


def watch_progress(story: Story, api: httpx.Client, auth: dict[str, str], ids: set[str], timeout: float) -> dict[str, str]:
    """Wait for every payout to be final, with a live progress line."""

    def show(counts: Counter[str]) -> None:
        story.progress(" · ".join(f"{counts[s]} {s}" for s in ORDER if counts[s]) or "waiting")

    final = payouts.watch(lambda: payouts.statuses(api, auth), ids, timeout, show)
    counts = Counter(final.values())
    story.progress(" · ".join(f"{counts[s]} {s}" for s in ORDER if counts[s]), done=True)
    return final


def forged_webhooks(api: httpx.Client, count: int) -> int:
    """Deliveries an attacker could send: wrong secret, tampered body, stale timestamp, no signature.
    Returns how many the service accepted (must be 0)."""
    accepted = 0
    for index in range(count):
        event_id = f"evt_forged_{uuid.uuid4().hex[:12]}"
        body = json.dumps(
            {
                "id": event_id,
                "type": "payout.paid",
                "created_at": "2026-01-01T00:00:00Z",
                "data": {"payout_id": "x", "provider_reference": "y", "failure_reason": None},
            }
        )
        timestamp = str(int(time.time()) - (3600 if index % 4 == 2 else 0))
        signature = base64.b64encode(
            hmac.new(b"guessed-secret", f"{event_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
        ).decode()
        headers = {
            "content-type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": f"v1,{signature}",
        }
        if index % 4 == 3:
            headers.pop("webhook-signature")
        if index % 4 == 1:
            body = body.replace("payout.paid", "payout.failed")
        response = api.post("/webhooks/payments", content=body, headers=headers)
        accepted += response.status_code < 300
    return accepted


class MerchantEvents:
    """What the merchant's loopback receiver got: one line per request as it arrives (event type,
    payout, attempt as the receiver counts it, signature verified with the ``standardwebhooks``
    library against the endpoint's secret, the answer it gave)."""

    def __init__(self, receiver: Recorder) -> None:
        self.receiver = receiver
        self.secret = ""
        self.shown = 0
        self.attempts: Counter[str] = Counter()
        self.verified = 0
        self.unverified: list[str] = []

    def show_new(self) -> None:
        for post in self.receiver.posts()[self.shown :]:
            if "answered_at" not in post:  # still being answered
                break
            self.shown += 1
            event = json.loads(post["body"])
            self.attempts[event["id"]] += 1
            try:
                Webhook(self.secret).verify(post["body"], post["headers"])
                self.verified += 1
                signature = "signature ✓"
            except WebhookVerificationError as error:
                self.unverified.append(f"{event['id']}: {error}")
                signature = f"signature ✗ ({error})"
            about = event["data"]["object"].get("id") or event["data"]["object"].get("connection_id", "")
            print(
                f"  ← {event['type']:<24} {about}  attempt {self.attempts[event['id']]}  {signature}  answered {post['status']}", flush=True
            )

    def wait_for_payouts(self, ids: set[str], timeout: float) -> bool:
        """Show events as they arrive until every event of every payout in ``ids`` was answered 2xx."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.show_new()
            if every_event_delivered(self.receiver.posts(), ids):
                self.show_new()
                return True
            time.sleep(0.2)
        return False


def run(stack: RunningStack, story: Story, burst: int, hooks: MerchantEvents) -> dict[str, Any]:
    api = httpx.Client(base_url=stack.api_url, timeout=60)
    summary: dict[str, Any] = {}

    story.step("Sign in through the sandbox identity provider (OpenID Connect, PKCE)")
    auth = {"Authorization": f"Bearer {sign_in_patiently(api, 'ada@example.com')}"}
    me = api.get("/auth/me", headers=auth).json()
    story.check(me["email"] == "ada@example.com", f"signed in as {me['name']} <{me['email']}>")

    api.put("/sandbox/payments/webhooks", json={"enabled": True, "delay_seconds": 0, "failure_rate": 0.1, "scheme": "standard"})
    api.put("/sandbox/payments/faults", json={"error_rate": 0, "rate_limit_rate": 0, "timeout_rate": 0, "latency_ms": 0})

    story.step("Fund the account: the sandbox provider reports R10,000.00 received (a signed funding.received webhook)")
    funded = 1_000_000
    payouts.fund(api, auth, {"ZAR": funded})
    balance = next(item for item in payouts.balances(api, auth)["items"] if item["currency"] == "ZAR")
    story.check(balance["available"] == funded, f"R{balance['available_decimal']} available")
    too_much = payouts.create(api, auth, payouts.body(funded + 1, "More than the balance"))
    story.check(
        too_much.status_code == 422 and too_much.json()["type"].endswith("insufficient-funds"),
        f"a payout of R{(funded + 1) / 100:,.2f} is refused: {too_much.status_code} insufficient funds, "
        f"R{too_much.json().get('available_decimal')} available",
    )

    story.step("Register a merchant webhook endpoint for every event type, on a loopback receiver")
    endpoint = api.post(
        "/webhook-endpoints", json={"url": f"{hooks.receiver.url}/payrail-events", "description": "the demo's receiver"}, headers=auth
    )
    story.check(
        endpoint.status_code == 201, f"{endpoint.status_code}: endpoint {endpoint.json().get('id')} → {hooks.receiver.url}/payrail-events"
    )
    hooks.secret = endpoint.json().get("secret", "")
    story.check(hooks.secret.startswith("whsec_"), "its signing secret is shown once, in this answer (whsec_…)")
    hooks.receiver.codes = [503]  # the receiver refuses the first delivery: it comes again on the retry schedule

    story.step("Create a payout, then retry it with the same Idempotency-Key")
    key = str(uuid.uuid4())
    first, retry = (
        payouts.create(api, auth, payouts.body(12550, "Invoice 1001"), key),
        payouts.create(api, auth, payouts.body(12550, "Invoice 1001"), key),
    )
    story.check(first.status_code == 201, f"201 Created: payout {first.json().get('id')} for R125.50")
    story.check(
        retry.status_code == 201 and retry.json()["id"] == first.json()["id"] and retry.headers.get("idempotent-replayed") == "true",
        "the retry replayed the original answer (Idempotent-Replayed: true), no second payout",
    )
    ids = {first.json()["id"]}

    story.step(f"A concurrent burst: {burst} payouts from 8 clients, and 16 concurrent sends of one key")
    with ThreadPoolExecutor(max_workers=8) as pool:
        burst_answers = list(pool.map(lambda i: payouts.create(api, auth, payouts.body(1000 + i, f"Burst {i}")), range(burst)))
        duplicate_key = str(uuid.uuid4())
        duplicates = list(pool.map(lambda _: payouts.create(api, auth, payouts.body(777, "Same key"), duplicate_key), range(16)))
    story.check(all(r.status_code == 201 for r in burst_answers), f"{burst} payouts created")
    duplicate_ids = {r.json()["id"] for r in duplicates if r.status_code == 201}
    story.check(
        len(duplicate_ids) == 1 and all(r.status_code == 201 for r in duplicates),
        f"16 concurrent sends of one key made {len(duplicate_ids)} payout (answers: {dict(Counter(r.status_code for r in duplicates))})",
    )
    ids |= {r.json()["id"] for r in burst_answers if r.status_code == 201} | duplicate_ids

    story.step("Watch them settle through the provider's signed webhooks")
    final = watch_progress(story, api, auth, ids, timeout=120)
    story.check(len(final) == len(ids) and set(final.values()) <= FINAL, f"all {len(ids)} payouts reached paid or failed")

    story.step("Merchant webhooks: each signed event at the receiver as it arrives (verified with standardwebhooks)")
    story.check(hooks.wait_for_payouts(ids, timeout=120), f"every state change of the {len(ids)} payouts was delivered, one event each")

    story.step("Redeliver every webhook event again, and send forged ones")
    delivered = 0
    provider_ids = {item["idempotency_key"]: item["id"] for item in payouts.provider_received(api)}
    for payout_id in sorted(ids & provider_ids.keys()):  # one the provider never got failed a check above
        events = api.get(f"/sandbox/payments/v1/payouts/{provider_ids[payout_id]}/events").json()["items"]
        for event in events:
            delivered += api.post(f"/sandbox/payments/v1/events/{event['id']}/redeliver").status_code < 300
    time.sleep(3)
    after = {k: v for k, v in payouts.statuses(api, auth).items() if k in ids}
    story.check(after == final, f"{delivered} redelivered events changed nothing (deduplicated by event id)")
    forged_accepted = forged_webhooks(api, 20)
    story.check(forged_accepted == 0, f"20 forged, tampered, stale or unsigned webhooks: {forged_accepted} accepted")

    story.step("Faults at the provider: 20% 5xx, 10% 429, 5% timeouts")
    api.put("/sandbox/payments/faults", json={"error_rate": 0.2, "rate_limit_rate": 0.1, "timeout_rate": 0.05, "latency_ms": 0})
    faulty = [payouts.create(api, auth, payouts.body(5000 + i, f"Under faults {i}")) for i in range(10)]
    faulty_ids = {r.json()["id"] for r in faulty if r.status_code == 201}
    faulty_final = watch_progress(story, api, auth, faulty_ids, timeout=180)
    api.put("/sandbox/payments/faults", json={"error_rate": 0, "rate_limit_rate": 0, "timeout_rate": 0, "latency_ms": 0})
    story.check(
        len(faulty_final) == 10 and set(faulty_final.values()) <= FINAL,
        "every payout still reached a final status (retries, backoff, breaker)",
    )
    ids |= faulty_ids

    received = payouts.provider_received(api)
    provider_duplicates = payouts.provider_duplicates(received)
    story.check(provider_duplicates == 0, f"the provider received {len(received)} payouts, {provider_duplicates} duplicates")

    story.step("Link a sandbox bank and sync it twice")
    connection = bank.link(api, auth, "ada@example.com")
    first_sync = bank.sync(api, auth, connection["id"])
    story.check(
        (first_sync["inserted"], first_sync["pages"]) == (15, 3),
        f"first sync: {first_sync['inserted']} inserted in {first_sync['pages']} pages",
    )
    second_sync = bank.sync(api, auth, connection["id"])
    story.check(
        second_sync["inserted"] == second_sync["updated"] == second_sync["written"] == 0, f"second sync: {second_sync['written']} written"
    )

    story.step("Faults at the bank: two 429s with Retry-After, then a mutation during pagination")
    api.put("/sandbox/bank/control/transactions", json={"user": "ada@example.com", "add": 12})
    api.put("/sandbox/bank/control/faults", json={"user": "ada@example.com", "kind": "rate_limited", "count": 2, "retry_after": 1})
    api.put("/sandbox/bank/control/faults", json={"user": "ada@example.com", "kind": "mutation_during_pagination", "count": 1, "after": 1})
    faulted = bank.sync(api, auth, connection["id"], timeout=120)
    story.check(faulted["inserted"] == 12, f"the sync absorbed them: {faulted['inserted']} inserted in {faulted['pages']} pages")

    story.step("The balance explains every cent: funded = paid + reserved + available")
    paid = sum(item["amount"] for item in payouts.listing(api, auth) if item["status"] == "paid")
    balance = next(item for item in payouts.balances(api, auth)["items"] if item["currency"] == "ZAR")
    story.check(
        funded == paid + balance["reserved"] + balance["available"],
        f"R{funded / 100:,.2f} funded = R{paid / 100:,.2f} paid + R{balance['reserved_decimal']} reserved"
        f" + R{balance['available_decimal']} available",
    )

    story.step("Merchant webhooks: the events since (payouts under faults, the bank syncs)")
    story.check(hooks.wait_for_payouts(ids, timeout=120), f"every state change of all {len(ids)} payouts was delivered")

    def synced() -> bool:
        hooks.show_new()
        return sum(entry["event"]["type"] == "bank_connection.synced" for entry in delivered_events(hooks.receiver.posts())) >= 3

    story.check(bool(wait_for(synced, timeout=60)), "the three bank syncs were delivered as bank_connection.synced")
    hooks.show_new()
    events = delivered_events(hooks.receiver.posts())
    story.check(bool(events), f"{len(events)} events delivered to the receiver in {hooks.shown} requests")
    story.check(not hooks.unverified, f"{hooks.verified} of {hooks.shown} signatures verified {hooks.unverified or ''}".rstrip())
    seen = {(event_id, attempt) for event_id, count in hooks.attempts.items() for attempt in range(1, count + 1)}
    listed: set[tuple[str, int]] = set()

    def same() -> bool:  # the worker records an attempt just after the receiver answered it
        nonlocal listed
        listed = _attempts_listed(api, auth, endpoint.json()["id"])
        return listed == seen

    with contextlib.suppress(TimedOut):
        wait_for(same, timeout=20, interval=1)
    story.check(
        listed == seen,
        f"the endpoint's deliveries list shows the {len(listed)} attempts the receiver saw"
        + (f" (listed only: {sorted(listed - seen)[:3]}, received only: {sorted(seen - listed)[:3]})" if listed != seen else ""),
    )

    denied = stack.denied_calls()
    story.check(not denied, f"{sum(denied.values())} AWS calls refused by the functions' IAM roles {denied or ''}".rstrip())

    by_status = Counter(status for payout_id, status in payouts.statuses(api, auth).items() if payout_id in ids)
    summary.update(
        iam_denied=sum(denied.values()),
        payouts=dict(by_status),
        provider_received=len(received),
        provider_duplicates=provider_duplicates,
        webhooks_redelivered=delivered,
        forged_sent=20,
        forged_accepted=forged_accepted,
        syncs=[(s["inserted"], s["updated"], s["removed"], s["written"], s["pages"]) for s in (first_sync, second_sync, faulted)],
        merchant_events=dict(Counter(entry["event"]["type"] for entry in events)),
        merchant_requests=hooks.shown,
        merchant_verified=hooks.verified,
    )
    return summary


def _attempts_listed(api: httpx.Client, auth: dict[str, str], endpoint_id: str) -> set[tuple[str, int]]:
    """(event id, attempt) of every attempt ``GET /webhook-endpoints/{id}/deliveries`` lists."""
    listed: set[tuple[str, int]] = set()
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = api.get(f"/webhook-endpoints/{endpoint_id}/deliveries", params=params, headers=auth).json()
        listed |= {(item["event_id"], item["attempt"]) for item in page["items"]}
        cursor = page.get("next_cursor")
        if not cursor:
            return listed


def print_summary(story: Story, summary: dict[str, Any], stack: RunningStack) -> None:
    log = stack.log()
    verified = log.count("POST /webhooks/payments -> WebhookReceiveFunction 202")
    rejected = log.count("POST /webhooks/payments -> WebhookReceiveFunction 401")
    rows = [
        ("payouts by status", ", ".join(f"{count} {status}" for status, count in sorted(summary.get("payouts", {}).items()))),
        ("webhooks verified (202)", str(verified)),
        ("webhooks rejected (401)", str(rejected)),
        ("webhooks redelivered, deduplicated", str(summary.get("webhooks_redelivered", 0))),
        ("forged webhooks accepted", f"{summary.get('forged_accepted', '?')} of {summary.get('forged_sent', '?')}"),
        ("provider-side duplicates", str(summary.get("provider_duplicates", "?"))),
        ("bank syncs (ins/upd/rem/written/pages)", "; ".join("/".join(map(str, s)) for s in summary.get("syncs", []))),
        (
            "merchant events delivered (by type)",
            ", ".join(f"{count} {kind}" for kind, count in sorted(summary.get("merchant_events", {}).items())) or "none",
        ),
        ("merchant signatures verified", f"{summary.get('merchant_verified', '?')} of {summary.get('merchant_requests', '?')} requests"),
        ("AWS calls refused by IAM", str(summary.get("iam_denied", "?"))),
        ("time taken", f"{time.monotonic() - story.started:.1f} s"),
        ("invariants", "all held" if not story.failures else f"{len(story.failures)} FAILED"),
    ]
    width = max(len(name) for name, _ in rows)
    print("\n" + "─" * (width + 40))
    for name, value in rows:
        print(f"  {name.ljust(width)}  {value}")
    print("─" * (width + 40))


def main() -> int:
    parser = argparse.ArgumentParser(description="The Payrail demo on a fresh local stack.")
    parser.add_argument("--burst", type=int, default=24, help="payouts in the concurrent burst (default 24)")
    args = parser.parse_args()
    story = Story()
    print("Starting a fresh local stack (moto, every function of template.yaml)…", flush=True)
    stack = RunningStack(Path(tempfile.mkdtemp(prefix="payrail-demo-")), parameters=STACK_PARAMETERS)
    receiver = Recorder()
    summary: dict[str, Any] = {}
    try:
        print(f"  API {stack.api_url} · docs {stack.api_url}/docs · log {stack.log_path}")
        summary = run(stack, story, args.burst, MerchantEvents(receiver))
    except (TimedOut, AssertionError, httpx.HTTPError) as error:
        story.check(False, f"the demo could not go on: {error}")
    finally:
        print_summary(story, summary, stack)
        receiver.stop()
        stack.stop()
    return 1 if story.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
