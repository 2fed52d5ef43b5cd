"""Scheduled reconciliation of unfinished payouts: a webhook that never arrives, or a hand-off
to SQS that failed after the 201, must not leave a payout stuck.

It reads the unfinished-payout markers (the transactional outbox written with each payout and
deleted with its terminal status) older than a grace period, shard by shard, and for each:

* ``pending`` (never handed to the provider): re-enqueue it to the payout worker, which submits
  with the payout id as the provider's idempotency key, so a duplicate cannot pay twice. A
  pending payout's message may just be waiting behind a backlog or out a backoff, so each
  re-enqueue waits twice as long after the last as the one before did (the grace period, then
  twice it, four times it ...), noted on its marker with a condition; never every run;
* ``submitted`` / ``processing`` with no news for longer than the stuck threshold: ask the
  provider and apply its answer through the very same exactly-once path as a webhook, with a
  synthesised event id ``reconcile:<payout>:<status>`` so it is deduplicated too;
* already ``paid`` / ``failed`` while the marker survived: delete the marker.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
from aws_lambda_powertools import single_metric
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ConfigDict, Field

from payrail import queues
from payrail.db import Item, keys
from payrail.db.payment_events import StatusChange, claim_requeue, delete_marker, outbox_markers, payouts, timestamp_text
from payrail.observability import CORRELATION_HEADER, correlation_id, logger, metrics
from payrail.payouts.status import PayoutStatus
from payrail.scheduled import Deadline
from payrail.settings import Settings, load
from payrail.webhooks.apply import apply_change
from payrail.webhooks.events import TARGETS

PROVIDER_TIMEOUT_SECONDS = 5.0

# Stuck payouts are looked up at the provider, and pending ones re-enqueued ten to a batch, this
# many at a time: one slow or timed-out answer must not hold up the rest of a backlog, and eight
# requests in flight is well within what a payment provider's API allows a client.
PROVIDER_CONCURRENCY = 8


class ReconcileSettings(Settings):
    model_config = ConfigDict(extra="ignore", frozen=True)
    payouts_queue_url: str = Field(alias="PAYOUTS_QUEUE_URL", min_length=1)
    payment_provider_url: str = Field(alias="PAYMENT_PROVIDER_URL", min_length=1)
    grace_seconds: int = Field(default=120, alias="RECONCILE_GRACE_SECONDS", ge=0)
    stuck_seconds: int = Field(default=600, alias="RECONCILE_STUCK_SECONDS", ge=0)


def _repair(action: str, count: int = 1) -> None:
    with single_metric(name="ReconciliationRepairs", unit=MetricUnit.Count, value=count, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="action", value=action)


def provider_status(payout: Item, timeout: float = PROVIDER_TIMEOUT_SECONDS) -> dict[str, Any] | None:
    """The provider's view of ``payout`` (``GET /v1/payouts/{reference}``), or None if it has none."""
    settings = load(ReconcileSettings)
    reference = payout.get("provider_reference") or payout["id"]
    url = f"{settings.payment_provider_url.rstrip('/')}/v1/payouts/{reference}"
    response = httpx.get(url, timeout=timeout, headers={CORRELATION_HEADER: correlation_id()})
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


def _ask_provider(payout: Item, deadline: Deadline) -> str:
    """Bring one stuck payout to the provider's status; what happened, as a tally key."""
    if deadline.passed:
        return "deferred_to_next_run"
    try:
        answer = provider_status(payout, timeout=min(PROVIDER_TIMEOUT_SECONDS, deadline.remaining()))
    except (httpx.HTTPError, ValueError) as error:
        logger.warning("provider status unavailable", extra={"payout_id": payout["id"], "error": type(error).__name__})
        return "provider_unavailable"
    status = str((answer or {}).get("status", ""))
    target = TARGETS.get(f"payout.{status}")
    if answer is None or target is None:
        return "provider_no_news"
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
    if outcome.value == "applied":
        _repair(f"applied_{target.value}")
    return f"provider_{outcome.value}"


def requeue_due_before(marker: Item, now: datetime, grace_seconds: int) -> str:
    """The payout of ``marker`` is re-enqueued again only if it was last re-enqueued before this
    time: the grace period doubled for every re-enqueue so far (capped at a day)."""
    count = int(marker.get("requeue_count", 0))
    return timestamp_text(now - timedelta(seconds=min(grace_seconds * 2**count, 86_400)))


def _requeue(markers: list[Item], deadline: Deadline, now: datetime, grace_seconds: int) -> Counter[str]:
    """Re-enqueue the pending payouts of ``markers`` (one batch) whose marker this run claims."""
    tally: Counter[str] = Counter()
    claimed: list[dict[str, str]] = []
    for marker in markers:
        if deadline.passed:
            tally["requeue_deferred"] += 1
        elif claim_requeue(marker, timestamp_text(now), requeue_due_before(marker, now, grace_seconds)):
            claimed.append({"payout_id": keys.outbox_payout_id(marker)})
        else:
            tally["requeue_claimed_elsewhere"] += 1
    if claimed:
        queues.send_batch(load(ReconcileSettings).payouts_queue_url, claimed)
        _repair("requeued", len(claimed))
        tally["requeued"] += len(claimed)
    return tally


def _delete_marker(marker: Item, deadline: Deadline) -> str:
    """Remove the marker a finished payout left behind."""
    if deadline.passed:
        return "marker_delete_deferred"
    delete_marker(marker)
    _repair("marker_deleted")
    return "markers_deleted"


def _first_shard(now: datetime) -> int:
    """Where this run starts its walk of the outbox shards. It moves on by one shard a minute, so
    when runs keep stopping at their deadline, no shard is always the one left for later."""
    return int(now.timestamp() // 60) % keys.OUTBOX_SHARDS


def reconcile_payouts(now: datetime, deadline: Deadline) -> dict[str, Any]:
    """The scheduled job: repair every unfinished payout whose marker is older than the grace period.

    Work not started by ``deadline`` (shards not read, batches not re-enqueued, stuck payouts not
    looked up) is counted as deferred and left to the next run."""
    settings = load(ReconcileSettings)
    grace_cutoff = now - timedelta(seconds=settings.grace_seconds)
    stuck_cutoff = now - timedelta(seconds=settings.stuck_seconds)
    tally: Counter[str] = Counter()
    finished: list[Item] = []
    pending: list[Item] = []
    stuck: list[tuple[str, Item]] = []
    shards = keys.outbox_shards()
    first = _first_shard(now)
    for shard in shards[first:] + shards[:first]:
        if deadline.passed:
            tally["shards_deferred"] += 1
            continue
        markers = outbox_markers(shard, timestamp_text(grace_cutoff))
        if not markers:
            continue
        found = payouts([keys.outbox_payout_id(m) for m in markers])
        for marker in markers:
            payout_id = keys.outbox_payout_id(marker)
            payout = found.get(payout_id)
            tally["markers"] += 1
            if payout is None:
                tally["orphan_markers"] += 1
                logger.warning("unfinished-payout marker without a payout", extra={"payout_id": payout_id})
                continue
            status = PayoutStatus(str(payout["status"]))
            if status.terminal:
                finished.append(marker)
            elif status is PayoutStatus.PENDING:
                if str(marker.get("requeued_at", "")) >= requeue_due_before(marker, now, settings.grace_seconds):
                    tally["requeued_recently"] += 1
                else:
                    pending.append(marker)
            elif _older_than(payout.get("updated_at"), stuck_cutoff):
                stuck.append((str(marker["sk"]), payout))
    # Oldest first, so a backlog bigger than one run is worked off in the order it built up.
    pending.sort(key=lambda marker: str(marker["sk"]))
    stuck.sort(key=lambda entry: entry[0])
    batches = [pending[start : start + 10] for start in range(0, len(pending), 10)]
    # Reading is done; every write and lookup from here on checks the deadline before it starts.
    with ThreadPoolExecutor(max_workers=PROVIDER_CONCURRENCY) as pool:
        requeued = pool.map(lambda batch: _requeue(batch, deadline, now, settings.grace_seconds), batches)
        looked_up = pool.map(lambda entry: _ask_provider(entry[1], deadline), stuck)
        deleted = pool.map(lambda marker: _delete_marker(marker, deadline), finished)
        for counts in requeued:
            tally.update(counts)
        tally.update(looked_up)
        tally.update(deleted)
    result = {name: count for name, count in tally.items() if count}
    logger.info("payouts reconciled", extra={"result": result})
    return result
