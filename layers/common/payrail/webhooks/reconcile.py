"""Scheduled reconciliation of unfinished payouts: a webhook that never arrives, or a hand-off
to SQS that failed after the 201, must not leave a payout stuck.

It reads the unfinished-payout markers (the transactional outbox written with each payout and
deleted with its terminal status) older than a grace period, shard by shard, and for each:

* ``pending`` (never handed to the provider): re-enqueue it to the payout worker, which submits
  with the payout id as the provider's idempotency key, so a duplicate cannot pay twice;
* ``submitted`` / ``processing`` with no news for longer than the stuck threshold: ask the
  provider and apply its answer through the very same exactly-once path as a webhook, with a
  synthesised event id ``reconcile:<payout>:<status>`` so it is deduplicated too;
* already ``paid`` / ``failed`` while the marker survived: delete the marker.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import httpx
from aws_lambda_powertools import single_metric
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ConfigDict, Field

from payrail import queues
from payrail.db import Item, keys
from payrail.db.payment_events import StatusChange, delete_marker, outbox_markers, payouts, timestamp_text
from payrail.observability import CORRELATION_HEADER, correlation_id, logger, metrics
from payrail.payouts.status import PayoutStatus
from payrail.settings import Settings, load
from payrail.webhooks.apply import apply_change
from payrail.webhooks.events import TARGETS

PROVIDER_TIMEOUT_SECONDS = 5.0


# The provider is asked about stuck payouts one by one, oldest first; past this many seconds the
# rest wait for the next run, so a backlog never runs the function (60 s) out of time with
# nothing repaired and the re-enqueues unsent.
PROVIDER_BUDGET_SECONDS = 40.0


class ReconcileSettings(Settings):
    model_config = ConfigDict(extra="ignore", frozen=True)
    payouts_queue_url: str = Field(alias="PAYOUTS_QUEUE_URL", min_length=1)
    payment_provider_url: str = Field(alias="PAYMENT_PROVIDER_URL", min_length=1)
    grace_seconds: int = Field(default=120, alias="RECONCILE_GRACE_SECONDS", ge=0)
    stuck_seconds: int = Field(default=600, alias="RECONCILE_STUCK_SECONDS", ge=0)


def _repair(action: str, count: int = 1) -> None:
    with single_metric(name="ReconciliationRepairs", unit=MetricUnit.Count, value=count, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="action", value=action)


def provider_status(payout: Item) -> dict[str, Any] | None:
    """The provider's view of ``payout`` (``GET /v1/payouts/{reference}``), or None if it has none."""
    settings = load(ReconcileSettings)
    reference = payout.get("provider_reference") or payout["id"]
    url = f"{settings.payment_provider_url.rstrip('/')}/v1/payouts/{reference}"
    response = httpx.get(url, timeout=PROVIDER_TIMEOUT_SECONDS, headers={CORRELATION_HEADER: correlation_id()})
    if response.status_code == 404:
        return None
    response.raise_for_status()
    answer: Any = response.json()
    return answer if isinstance(answer, dict) else None


def _older_than(value: Any, cutoff: datetime) -> bool:
    try:
        return datetime.fromisoformat(str(value)) < cutoff
    except ValueError:
        return True


def _ask_provider(payout: Item, tally: Counter[str]) -> None:
    try:
        answer = provider_status(payout)
    except (httpx.HTTPError, ValueError) as error:
        logger.warning("provider status unavailable", extra={"payout_id": payout["id"], "error": type(error).__name__})
        tally["provider_unavailable"] += 1
        return
    status = str((answer or {}).get("status", ""))
    target = TARGETS.get(f"payout.{status}")
    if answer is None or target is None:
        tally["provider_no_news"] += 1
        return
    change = StatusChange(
        event_id=f"reconcile:{payout['id']}:{target.value}",
        event_type=f"payout.{target.value}",
        payout_id=str(payout["id"]),
        target=target,
        provider_reference=answer.get("provider_reference") or answer.get("id"),
        failure_reason=answer.get("failure_reason"),
        source="reconciliation",
    )
    outcome = apply_change(change)
    tally[f"provider_{outcome.value}"] += 1
    if outcome.value == "applied":
        _repair(f"applied_{target.value}")


def reconcile_payouts(now: datetime) -> dict[str, Any]:
    """The scheduled job: repair every unfinished payout whose marker is older than the grace period."""
    settings = load(ReconcileSettings)
    grace_cutoff = now - timedelta(seconds=settings.grace_seconds)
    stuck_cutoff = now - timedelta(seconds=settings.stuck_seconds)
    tally: Counter[str] = Counter()
    requeue: list[dict[str, Any]] = []
    started = time.monotonic()
    for shard in keys.outbox_shards():
        markers = outbox_markers(shard, timestamp_text(grace_cutoff))
        if not markers:
            continue
        found = payouts([str(m["sk"]).rsplit("#", 1)[-1] for m in markers])
        for marker in markers:
            payout_id = str(marker["sk"]).rsplit("#", 1)[-1]
            payout = found.get(payout_id)
            tally["markers"] += 1
            if payout is None:
                tally["orphan_markers"] += 1
                logger.warning("unfinished-payout marker without a payout", extra={"payout_id": payout_id})
                continue
            status = PayoutStatus(str(payout["status"]))
            if status.terminal:
                delete_marker(marker)
                tally["markers_deleted"] += 1
                _repair("marker_deleted")
            elif status is PayoutStatus.PENDING:
                requeue.append({"payout_id": payout_id})
            elif _older_than(payout.get("updated_at"), stuck_cutoff):
                if time.monotonic() - started > PROVIDER_BUDGET_SECONDS:
                    tally["deferred_to_next_run"] += 1
                    continue
                _ask_provider(payout, tally)
    if requeue:
        queues.send_batch(settings.payouts_queue_url, requeue)
        tally["requeued"] += len(requeue)
        _repair("requeued", len(requeue))
    logger.info("payouts reconciled", extra={"result": dict(tally)})
    return dict(tally)
