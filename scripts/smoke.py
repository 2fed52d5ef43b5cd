"""Smoke test of a deployed (or local) dev stack, over HTTPS like a client: exit 0 when it works.

    .venv/bin/python scripts/smoke.py https://abc123.execute-api.eu-west-1.amazonaws.com
    .venv/bin/python scripts/smoke.py "$(aws cloudformation describe-stacks --stack-name payrail-dev \\
        --query "Stacks[0].Outputs[?OutputKey=='ApiUrl'].OutputValue" --output text)"

Checks, in order: /health answers 200; a user signs in through the sandbox identity provider;
the sandbox provider funds the user (its signed ``funding.received`` webhook credits the balance);
one payout reaches ``paid`` through the sandbox provider's signed webhooks; a sandbox bank is
linked and synced. The sandbox exists on dev stacks only: against prod, ``--health-only``.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scenarios import bank, payouts
from scenarios.signin import sign_in


def _step(name: str, run: Callable[[], str]) -> bool:
    started = time.monotonic()
    try:
        detail = run()
    except Exception as error:
        print(f"FAIL {name}: {type(error).__name__}: {error}", flush=True)
        return False
    print(f"ok   {name} ({time.monotonic() - started:.1f} s){': ' + detail if detail else ''}", flush=True)
    return True


def smoke(base_url: str, health_only: bool = False, payout_timeout: float = 120.0, client: httpx.Client | None = None) -> bool:
    api = client or httpx.Client(base_url=base_url.rstrip("/"), timeout=15.0)
    state: dict[str, Any] = {}

    def health() -> str:
        response = api.get("/health")
        assert response.status_code == 200, f"{response.status_code} {response.text[:200]}"
        return str(response.json()["status"])

    def signed_in() -> str:
        email = f"smoke-{uuid.uuid4().hex[:8]}@example.com"
        state["auth"] = {"Authorization": f"Bearer {sign_in(api, email)}"}
        me = api.get("/auth/me", headers=state["auth"])
        assert me.status_code == 200, me.text
        return str(me.json()["email"])

    def funded() -> str:
        payouts.fund(api, state["auth"], {"ZAR": 12550}, timeout=payout_timeout)
        balance = next(item for item in payouts.balances(api, state["auth"])["items"] if item["currency"] == "ZAR")
        return f"{balance['available_decimal']} ZAR available"

    def payout_paid() -> str:
        created = payouts.create(api, state["auth"], payouts.body(12550, "smoke test"))
        assert created.status_code == 201, created.text
        payout_id = created.json()["id"]
        final = payouts.watch(lambda: payouts.statuses(api, state["auth"]), {payout_id}, timeout=payout_timeout)
        assert final.get(payout_id) == "paid", f"payout {payout_id} is {final.get(payout_id)} after {payout_timeout:.0f} s"
        return payout_id

    def bank_synced() -> str:
        connection = bank.link(api, state["auth"], f"smoke-{uuid.uuid4().hex[:6]}")
        summary = bank.sync(api, state["auth"], connection["id"], timeout=payout_timeout)
        return f"{summary.get('inserted', 0)} transactions inserted"

    steps = [("health", health)]
    if not health_only:
        steps += [
            ("sandbox sign-in", signed_in),
            ("sandbox funding", funded),
            ("payout to paid", payout_paid),
            ("bank link and sync", bank_synced),
        ]
    return all(_step(name, run) for name, run in steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url", help="the stack's ApiUrl output")
    parser.add_argument("--health-only", action="store_true", help="only /health (a prod stack has no sandbox)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a payout and a sync may take")
    args = parser.parse_args(argv)
    return 0 if smoke(args.base_url, args.health_only, args.timeout) else 1


if __name__ == "__main__":
    sys.exit(main())
