"""``make chaos``: the invariants under faults, on a fresh local stack.

* Payouts: N payouts from C concurrent clients, 10% of them sent again with the same key (half
  of those at the same moment), with the sandbox provider at 20% 5xx, 10% 429 and 5% timeouts
  (half of the timeouts after it accepted the payout), SQS duplicate deliveries injected on every
  queue, and worker invocations killed mid-way (some between the provider call and the status
  update). Every payout must reach a final status, no key may make two payouts, the provider may
  not receive a payout twice, and the dead-letter queues must be empty or every message in them
  accounted for.
* Webhook storm: every event redelivered three times in shuffled order, plus forged and tampered
  deliveries: none forged accepted, every payout's final status unchanged.
* Merchant webhooks: every client registers an endpoint on a loopback receiver that fails 30%
  of attempts and stalls past the delivery timeout on 10% (chaos/merchant_webhooks.py); every
  state change of every payout must reach its owner's endpoint at least once, none emitted twice,
  none elsewhere, the deliveries lists agreeing with the receiver and the webhook DLQs empty.
* Money: every client is funded (through the sandbox provider's funding webhook, under the same
  faults) with less than its payouts add up to, so payouts beyond the balance are mixed in and
  refused (422 insufficient-funds, the key usable again). Balances are read on every round: none
  may ever be negative. At the end, for every client, funded = paid + reserved + available, and
  the ledger audit finds no difference.

Exits non-zero when an invariant failed. ``--payouts 40 --clients 4`` is the size CI runs.
``--no-faults`` runs the same payouts and checks with no fault of any kind (provider, webhooks,
SQS duplicates, killed invocations): the baseline the faulty run's settled payouts per minute is
compared against.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from chaos import merchant_webhooks
from devstack.running import RunningStack
from scenarios import payouts
from scenarios.signin import sign_in

FAULTS = {"error_rate": 0.2, "rate_limit_rate": 0.1, "timeout_rate": 0.05, "latency_ms": 0}
NO_FAULTS = {"error_rate": 0, "rate_limit_rate": 0, "timeout_rate": 0, "latency_ms": 0}
STACK_OPTIONS = ["--duplicate-deliveries", "0.1", "--kill-rate", "0.05", "--max-visibility-timeout", "6"]
STACK_OPTIONS_WITHOUT_FAULTS = ["--max-visibility-timeout", "6"]
# The worker waits 8 s for the provider, not the template's 3: with 16 clients on two cores the
# local sandbox's own answer to a payout took p50 2.3 s and p90 6.3 s (a 500-payout run), so 3 s
# timed out 24 of 68 calls that had not failed at all, and that, not the fault mix, kept the
# breaker open. The "timeout" fault still sleeps past whatever this is.
STACK_PARAMETERS = (
    "PaymentProviderTimeoutSeconds=8 "
    "PayoutRateLimitPerMinute=100000 AuthRateLimitPerMinute=100000 PayoutRetryBackoffCapSeconds=8 "
    "ReconcileGraceSeconds=20 ReconcileStuckSeconds=30 ReconcileInFlightSeconds=40 " + merchant_webhooks.STACK_PARAMETERS
)
RECONCILE_EVERY_SECONDS = 15
# Each client is funded with this share of what its payouts add up to: the rest is refused.
FUNDED_SHARE = 0.8
WATCH_INTERVAL_SECONDS = 3


@dataclass
class Report:
    checks: list[tuple[bool, str]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)

    def check(self, ok: bool, text: str) -> None:
        self.checks.append((ok, text))
        print(f"  {'✓' if ok else '✗'} {text}", flush=True)

    @property
    def failed(self) -> list[str]:
        return [text for ok, text in self.checks if not ok]


def _sign_in(api: httpx.Client, worker: int, attempts: int = 5) -> str:
    """A client's access token. This stack kills 5% of invocations on purpose and a sign-in takes
    three, so a failed attempt is simply made again."""
    for _ in range(attempts - 1):
        try:
            return sign_in(api, f"chaos{worker}@example.com")
        except (AssertionError, httpx.HTTPError):
            continue
    return sign_in(api, f"chaos{worker}@example.com")


def _amount(index: int) -> int:
    return 10_000 + index


def _planned(count: int, clients: int, worker: int) -> int:
    """What the payouts of client ``worker`` add up to (every index it sends, once)."""
    return sum(_amount(index) for index in range(worker, count, clients))


def _refused(answer: httpx.Response) -> bool:
    return answer.status_code == 422 and str(answer.json().get("type", "")).endswith("insufficient-funds")


def _create_all(api_url: str, tokens: list[str], count: int, retry_share: float, report: Report) -> dict[str, str]:
    """Create ``count`` payouts from one client per token; some keys are sent twice. Key → payout id.
    A payout beyond the client's balance is refused (insufficient funds), writing nothing: a key
    sent twice may be refused once and created once (a failed payout released money in between)."""
    ids: dict[str, str] = {}
    conflicts: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()
    rng = random.Random(7)
    plan = [(index, str(uuid.uuid4()), rng.random() < retry_share) for index in range(count)]

    def client(worker: int) -> None:
        auth = {"Authorization": f"Bearer {tokens[worker]}"}
        with httpx.Client(base_url=api_url, timeout=60) as api:
            for index, key, retried in plan[worker :: len(tokens)]:
                body = payouts.body(_amount(index), f"Chaos {index}")
                attempts = 2 if retried else 1
                if retried and index % 2:
                    with ThreadPoolExecutor(max_workers=2) as pair:
                        answers = list(pair.map(lambda _, b=body, k=key: payouts.create(api, auth, b, k), range(attempts)))
                else:
                    answers = [payouts.create(api, auth, body, key) for _ in range(attempts)]
                got = {a.json()["id"] for a in answers if a.status_code == 201}
                with lock:
                    if len(got) > 1 or any(a.status_code != 201 and not _refused(a) for a in answers):
                        conflicts.append(f"{key}: {[a.status_code for a in answers]} {sorted(got)}")
                    if got:
                        ids[key] = next(iter(got))
                    else:
                        refused.append(key)

    threads = [threading.Thread(target=client, args=(worker,)) for worker in range(len(tokens))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    retried = sum(1 for _, _, again in plan if again)
    report.counts.update(created=len(ids), refused_insufficient_funds=len(refused), keys_sent_twice=retried)
    report.check(
        not conflicts and len(ids) + len(refused) == count and len(set(ids.values())) == len(ids),
        f"{count} keys ({retried} sent twice) made {len(set(ids.values()))} payouts and {len(refused)} refusals for "
        f"insufficient funds; {len(conflicts)} bad answers",
    )
    report.check(bool(refused) and bool(ids), "payouts beyond the balance were mixed in: some refused, the rest created")
    for line in conflicts[:5]:
        print(f"      {line}")
    return ids


def _dead_letters(stack: RunningStack) -> dict[str, list[str]]:
    """The bodies of every message in every dead-letter queue."""
    sqs = stack.client("sqs")
    found: dict[str, list[str]] = {}
    for logical_id in stack.state["physical"]:
        if logical_id.endswith("DLQ"):
            bodies: list[str] = []
            while batch := sqs.receive_message(QueueUrl=stack.physical(logical_id), MaxNumberOfMessages=10, VisibilityTimeout=60).get(
                "Messages", []
            ):
                bodies += [m["Body"] for m in batch]
            found[logical_id] = bodies
    return found


def _forged(api: httpx.Client, count: int, genuine: list[dict[str, Any]]) -> int:
    """Forged, tampered, replayed-with-new-body and stale deliveries; how many were accepted."""
    accepted = 0
    rng = random.Random(11)
    for index in range(count):
        event_id = f"evt_storm_{uuid.uuid4().hex[:12]}"
        target = rng.choice(genuine) if genuine else {"idempotency_key": "po_unknown", "id": "pp_unknown"}
        body = json.dumps(
            {
                "id": event_id,
                "type": "payout.failed",
                "created_at": "2026-11-22T00:00:00Z",
                "data": {"payout_id": target["idempotency_key"], "provider_reference": target["id"], "failure_reason": "forged"},
            }
        )
        timestamp = str(int(time.time()) - (900 if index % 5 == 3 else 0))
        signed = f"{event_id}.{timestamp}.{body}".encode()
        signature = base64.b64encode(hmac.new(b"attacker-guess-" + bytes([index % 256]), signed, hashlib.sha256).digest()).decode()
        headers = {
            "content-type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": f"v1,{signature}",
        }
        if index % 5 == 1:
            headers["webhook-signature"] = f"v0,{signature}"
        if index % 5 == 2:
            headers = {
                "content-type": "application/json",
                "authorization": "Bearer " + base64.urlsafe_b64encode(b'{"alg":"none"}').decode() + ".e30.",
            }
        if index % 5 == 4:
            body = body.replace("forged", "tampered")
        accepted += api.post("/webhooks/payments", content=body, headers=headers).status_code < 300
    return accepted


def run(stack: RunningStack, count: int, clients: int, forgeries: int, timeout: float, faults: bool = True) -> Report:
    hooks = merchant_webhooks.Webhooks.start(faults)
    try:
        return _run(stack, hooks, count, clients, forgeries, timeout, faults)
    finally:
        hooks.stop()


def _run(
    stack: RunningStack, hooks: merchant_webhooks.Webhooks, count: int, clients: int, forgeries: int, timeout: float, faults: bool
) -> Report:
    report = Report()
    api = httpx.Client(base_url=stack.api_url, timeout=60)
    webhook_failure_rate = 0.1 if faults else 0
    api.put(
        "/sandbox/payments/webhooks",
        json={"enabled": True, "delay_seconds": 0, "failure_rate": webhook_failure_rate, "scheme": "standard"},
    ).raise_for_status()
    api.put("/sandbox/payments/faults", json=FAULTS if faults else NO_FAULTS).raise_for_status()
    tokens = [_sign_in(api, worker) for worker in range(clients)]
    hooks.register(api, tokens)
    history = merchant_webhooks.History(stack)
    funded = [round(_planned(count, clients, worker) * FUNDED_SHARE) for worker in range(clients)]
    credited: set[str] = set()  # the funding events the ledgers show credited
    for token, amount in zip(tokens, funded, strict=True):
        credited.update(payouts.fund(api, {"Authorization": f"Bearer {token}"}, {"ZAR": amount}, timeout=180))
    lowest: dict[str, int] = {"available": 0, "reserved": 0}
    started = time.monotonic()

    print(f"▶ {count} payouts from {clients} clients {'under faults' if faults else 'with no faults'}", flush=True)
    ids = _create_all(stack.api_url, tokens, count, 0.10, report)
    wanted = set(ids.values())

    seen: dict[str, str] = {}
    reconciled = [time.monotonic()]
    signed_in = [time.monotonic()]

    def everyone() -> dict[str, str]:
        # Access tokens live 15 minutes and a full run settles for longer: sign in again first.
        if time.monotonic() - signed_in[0] >= 600:
            tokens[:] = [_sign_in(api, worker) for worker in range(clients)]
            hooks.reauthorise(tokens)
            signed_in[0] = time.monotonic()
        # The schedule runs reconciliation (every 5 minutes on AWS); here 15 s after the last run
        # ended, as the repair for payouts whose messages were lost to crashes or parked in the DLQ.
        if time.monotonic() - reconciled[0] >= RECONCILE_EVERY_SECONDS:
            report.counts.setdefault("reconciliation_runs", 0)
            report.counts["reconciliation_runs"] += 1
            try:
                stack.fire("ScheduledSyncFunction")
            except RuntimeError as error:  # the next run retries, as the schedule would on AWS
                report.counts["reconciliation_failures"] = report.counts.get("reconciliation_failures", 0) + 1
                print(f"\n  ! {error}", flush=True)
            reconciled[0] = time.monotonic()  # 15 s after a run ends, not after it starts

        merged: dict[str, str] = {}
        for token in tokens:
            try:
                merged.update(payouts.statuses(api, {"Authorization": f"Bearer {token}"}))
                for balance in payouts.balances(api, {"Authorization": f"Bearer {token}"})["items"]:
                    lowest.update({name: min(lowest[name], int(balance[name])) for name in lowest})
            except httpx.HTTPStatusError as error:
                # A list request can time out on a stack this busy (the gateway's 5xx): the
                # statuses are read again on the next round, as a client would.
                if error.response.status_code < 500:
                    raise
                report.counts["status_reads_failed"] = report.counts.get("status_reads_failed", 0) + 1
                return seen
        seen.clear()
        seen.update(merged)
        return merged

    last_line = [0.0]

    def progress_line(line: str) -> None:
        if sys.stdout.isatty():
            print(f"\r  … {line}\033[K", end="", flush=True)
        elif time.monotonic() - last_line[0] >= 10:
            last_line[0] = time.monotonic()
            print(f"  … {line}", flush=True)

    def progress(counts: Counter[str]) -> None:
        progress_line(str(dict(sorted(counts.items()))))

    # Every round reads each client's list: polled every 0.5 s, the harness would be most of the stack's load.
    final = payouts.watch(everyone, wanted, timeout, progress, interval=WATCH_INTERVAL_SECONDS)
    print(flush=True)
    not_final = {payout_id: status for payout_id, status in final.items() if status not in payouts.FINAL}
    missing = wanted - set(final)
    settle_seconds = time.monotonic() - started
    report.counts.update(
        by_status=dict(Counter(final.values())),
        settle_seconds=round(settle_seconds, 1),
        settled_per_minute=round(sum(status in payouts.FINAL for status in final.values()) / settle_seconds * 60, 1),
    )
    report.check(
        not not_final and not missing,
        f"every payout reached paid or failed in {report.counts['settle_seconds']} s ({dict(Counter(final.values()))})",
    )

    api.put("/sandbox/payments/faults", json=NO_FAULTS).raise_for_status()
    received = payouts.provider_received(api)
    duplicates = payouts.provider_duplicates(received)
    unknown = {item["idempotency_key"] for item in received} - wanted
    report.counts.update(provider_received=len(received), provider_duplicates=duplicates)
    report.check(
        duplicates == 0 and not unknown, f"the provider received {len(received)} payouts: {duplicates} duplicates, {len(unknown)} unknown"
    )

    report.counts["injected"] = stack.chaos()
    print(f"  injected: {report.counts['injected']}", flush=True)
    # The provider's events, each with the payout it is about (the provider's idempotency key).
    about: dict[str, str] = {}
    for item in received:
        for event in api.get(f"/sandbox/payments/v1/payouts/{item['id']}/events").json()["items"]:
            about[event["id"]] = item["idempotency_key"]
    dead = _dead_letters(stack)
    report.counts["dead_letters"] = {name: len(messages) for name, messages in dead.items()}
    # A dead letter is accounted for when the payout it is about reached a final status anyway. A
    # payout message names its payout, a payment event names it in its data, and a webhook
    # delivery of the sandbox names its event. One about a funding is accounted for when the
    # funding was credited anyway (a duplicate delivery got through; its ledger entry says so).
    settled = {payout_id for payout_id, status in final.items() if status in payouts.FINAL}

    def accounted(body: str) -> bool:
        message = json.loads(body)
        if message.get("event_id") in credited or message.get("id") in credited:
            return True
        payout_id = message.get("payout_id") or (message.get("data") or {}).get("payout_id") or about.get(message.get("event_id"))
        return payout_id in settled

    # The merchant webhooks' dead letters are judged with their deliveries, at the end.
    unaccounted = [
        body for name, bodies in dead.items() if name not in merchant_webhooks.ENDPOINT_DLQS for body in bodies if not accounted(body)
    ]
    report.check(not unaccounted, f"dead-letter queues: {report.counts['dead_letters']}; every message accounted for by a final payout")
    for body in unaccounted[:5]:
        print(f"      {body[:200]}")

    print("▶ Webhook storm: every event three times, shuffled, and forged deliveries", flush=True)
    events = list(about)
    storm = events * 3
    random.Random(3).shuffle(storm)

    def redeliver(event_id: str) -> bool:
        # The sandbox's own API can time out on a stack this busy (the gateway's 500): ask again.
        for _ in range(3):
            if (status := api.post(f"/sandbox/payments/v1/events/{event_id}/redeliver").status_code) < 500:
                break
        return status < 300

    with ThreadPoolExecutor(max_workers=8) as pool:
        redelivered = sum(pool.map(redeliver, storm))
    forged_accepted = _forged(api, forgeries, received)
    time.sleep(5)
    after = payouts.watch(everyone, wanted, 30)
    changed = {payout_id for payout_id in wanted if after.get(payout_id) != final.get(payout_id)}
    report.counts.update(redelivered=redelivered, forged=forgeries, forged_accepted=forged_accepted)
    report.check(redelivered == len(storm), f"{redelivered} of {len(storm)} redeliveries sent")
    report.check(forged_accepted == 0, f"{forged_accepted} of {forgeries} forged or tampered webhooks accepted")
    report.check(not changed, f"{len(changed)} payouts changed status after the storm")
    print("▶ Money: funded = paid + reserved + available, for every client; the ledger audit", flush=True)
    unexplained = []
    for worker, token in enumerate(tokens):
        auth = {"Authorization": f"Bearer {token}"}
        paid = sum(item["amount"] for item in payouts.listing(api, auth) if item["status"] == "paid")
        balance = next((item for item in payouts.balances(api, auth)["items"] if item["currency"] == "ZAR"), None)
        available, reserved = (balance["available"], balance["reserved"]) if balance else (0, 0)
        if funded[worker] != paid + reserved + available:
            unexplained.append(f"client {worker}: funded {funded[worker]} != paid {paid} + reserved {reserved} + available {available}")
    report.counts["lowest_balance_seen"] = lowest
    report.check(not unexplained, f"funded = paid + reserved + available for all {len(tokens)} clients")
    for line in unexplained[:5]:
        print(f"      {line}")
    report.check(min(lowest.values()) >= 0, f"no balance was ever negative (lowest seen: {lowest})")
    audit = stack.fire("LedgerAuditFunction")["audit_ledger"]
    report.counts["ledger_audit"] = audit
    report.check(not audit.get("different") and audit.get("balanced", 0) >= len(tokens), f"the ledger audit found no difference ({audit})")

    print("▶ Merchant webhooks: every state change delivered to its owner's endpoint, none twice", flush=True)
    wanted_changes = merchant_webhooks.wait_for_deliveries(stack, history, hooks, timeout, progress_line)
    print(flush=True)
    # The tokens may be older than their 15 minutes by now: every client signs in again.
    tokens[:] = [_sign_in(api, worker) for worker in range(clients)]
    signed_in[0] = time.monotonic()
    hooks.reauthorise(tokens)
    owner = {
        item["id"]: worker for worker, token in enumerate(tokens) for item in payouts.listing(api, {"Authorization": f"Bearer {token}"})
    }
    kills = int(stack.chaos().get("kills_injected", 0))
    merchant_webhooks.check(report, stack, api, hooks, wanted_changes, owner, kills, dead)

    denied = stack.denied_calls()
    report.counts["iam_denied"] = denied
    report.check(not denied, f"{sum(denied.values())} AWS calls refused by the functions' IAM roles {denied or ''}".rstrip())
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description="Payrail's invariants under faults, on a fresh local stack.")
    parser.add_argument("--payouts", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--forgeries", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=900, help="seconds for every payout to settle")
    parser.add_argument("--no-faults", action="store_true", help="the baseline: the same run with no fault injected")
    args = parser.parse_args()
    print(f"Starting a fresh local stack {'without' if args.no_faults else 'with'} fault injection…", flush=True)
    options = STACK_OPTIONS_WITHOUT_FAULTS if args.no_faults else STACK_OPTIONS
    stack = RunningStack(Path(tempfile.mkdtemp(prefix="payrail-chaos-")), parameters=STACK_PARAMETERS, start_options=options)
    try:
        report = run(stack, args.payouts, args.clients, args.forgeries, args.timeout, faults=not args.no_faults)
    finally:
        stack.stop()
    print(json.dumps(report.counts, indent=2))
    print(f"chaos: {len(report.checks) - len(report.failed)} invariants held, {len(report.failed)} broken", file=sys.stderr)
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
