"""Scheduled reconciliation of unfinished payouts: a webhook that never arrives, or a hand-off
to SQS that failed after the 201, must not leave a payout stuck.

It reads the unfinished-payout markers (the transactional outbox written with each payout and
deleted with its terminal status) older than a grace period, shard by shard, and for each:

* ``pending`` (never handed to the provider): re-enqueue it to the payout worker, which submits
  with the payout id as the provider's idempotency key, so a duplicate cannot pay twice; but
  only once its message is lost. A message is in flight while a worker received it within
  ``in_flight_seconds`` (the worker notes ``received_at`` on every receive: a retry comes back
  within the visibility timeout or its backoff), and one never received may be waiting behind a
  backlog, so it is re-enqueued only after ``stuck_seconds``, or after the grace period when the
  API noted that its hand-off failed. Each re-enqueue also waits twice as long after the last as
  the one before did (the grace period, then twice it, four times it ...), noted on its marker
  with a condition; never every run. And never more of them than messages are certainly missing:
  a backlog longer than those waits (a slow or degraded provider) still holds the messages of
  payouts that look silent, so with W messages waiting in the payouts queue and S silent
  payouts, only the S - W oldest are re-enqueued (one ``GetQueueAttributes`` a run);
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

from aws_lambda_powertools import single_metric
from aws_lambda_powertools.metrics import MetricUnit

from payrail import clock, queues
from payrail.clock import Deadline
from payrail.db import payouts as store
from payrail.db.payment_events import StatusChange
from payrail.db.payouts import OutboxMarker, StoredPayout
from payrail.domain.payout_status import PayoutStatus
from payrail.errors import DependencyFailure
from payrail.observability import logger, metrics
from payrail.payouts.provider import PaymentProvider, ProviderTransientError
from payrail.payouts.submission import PayoutMessage
from payrail.settings import ReconcileSettings
from payrail.webhooks.apply import apply_change, failure_reason_of
from payrail.webhooks.events import TARGETS

# Stuck payouts are looked up at the provider, and pending ones re-enqueued ten to a batch, this
# many at a time: one slow or timed-out answer must not hold up the rest of a backlog, and eight
# requests in flight is well within what a payment provider's API allows a client.
PROVIDER_CONCURRENCY = 8


def _repair(action: str, count: int = 1) -> None:
    with single_metric(name="ReconciliationRepairs", unit=MetricUnit.Count, value=count, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="action", value=action)


def _older_than(value: str, cutoff: datetime) -> bool:
    moment = clock.parse(value)
    return moment is None or moment < cutoff


def _ask_provider(provider: PaymentProvider, payout: StoredPayout, deadline: Deadline) -> str:
    """Bring one stuck payout to the provider's status; what happened, as a tally key."""
    if deadline.passed:
        return "deferred_to_next_run"
    try:
        answer = provider.status(payout, timeout=min(provider.timeout, deadline.remaining()))
    except ProviderTransientError as error:
        logger.warning("provider status unavailable", extra={"payout_id": payout.id, "error": error.kind})
        return "provider_unavailable"
    status = str((answer or {}).get("status", ""))
    target = TARGETS.get(f"payout.{status}")
    if answer is None or target is None:
        return "provider_no_news"
    change = StatusChange(
        event_id=f"reconcile:{payout.id}:{target.value}",
        event_type=f"payout.{target.value}",
        payout_id=payout.id,
        target=target,
        provider_reference=answer.get("provider_reference") or answer.get("id"),
        failure_reason=failure_reason_of(target, answer.get("failure_reason")),
        source="reconciliation",
    )
    outcome = apply_change(change)
    if outcome.value == "applied":
        _repair(f"applied_{target.value}")
    return f"provider_{outcome.value}"


def requeue_due_before(marker: OutboxMarker, now: datetime, grace_seconds: int) -> str:
    """The payout of ``marker`` is re-enqueued again only if it was last re-enqueued before this
    time: the grace period doubled for every re-enqueue so far (capped at a day)."""
    return clock.text(now - timedelta(seconds=min(grace_seconds * 2**marker.requeue_count, 86_400)))


def _message_may_be_waiting(marker: OutboxMarker, payout: StoredPayout, now: datetime, settings: ReconcileSettings) -> str:
    """Why the pending payout's message may still reach a worker (a tally key), or "" when it is
    lost and the payout is to be re-enqueued."""
    if payout.received_at is not None:
        if not _older_than(payout.received_at, now - timedelta(seconds=settings.in_flight_seconds)):
            return "message_in_flight"
    elif not marker.hand_off_failed and not _older_than(marker.created_at, now - timedelta(seconds=settings.stuck_seconds)):
        return "message_not_received_yet"
    if (marker.requeued_at or "") >= requeue_due_before(marker, now, settings.grace_seconds):
        return "requeued_recently"
    return ""


def _certainly_missing(
    pending: list[tuple[OutboxMarker, StoredPayout]], deadline: Deadline, settings: ReconcileSettings, tally: Counter[str]
) -> list[tuple[OutboxMarker, StoredPayout]]:
    """Of the silent pending payouts (oldest first), those whose messages cannot all be waiting in
    the queue. Each silent payout whose message still exists accounts for one message waiting
    (ready or delayed: never received, or back after a retry or a postponement), so with W waiting
    only the S - W oldest are certainly without one. A payout whose hand-off failed has none.
    Other messages in the queue (duplicates, other payouts') only make the bound safer."""
    unsure = [entry for entry in pending if not entry[0].hand_off_failed]
    if not unsure:
        return pending
    waiting = len(unsure)  # none of them certainly missing, unless the queue's count says otherwise
    if deadline.passed:
        tally["requeue_deferred"] += len(unsure)
    else:
        try:
            waiting = queues.messages_waiting(settings.payouts_queue_url)
        except DependencyFailure as error:  # no bound known: leave them to the next run
            logger.warning("payouts queue backlog unknown; silent payouts left to the next run", extra={"error": error.detail})
            tally["requeue_deferred"] += len(unsure)
        else:
            tally["message_may_be_in_backlog"] += min(waiting, len(unsure))
    missing = {marker.payout_id for marker, _ in unsure[: max(0, len(unsure) - waiting)]}
    return [entry for entry in pending if entry[0].hand_off_failed or entry[0].payout_id in missing]


def _requeue(
    pending: list[tuple[OutboxMarker, StoredPayout]], deadline: Deadline, now: datetime, settings: ReconcileSettings
) -> Counter[str]:
    """Re-enqueue the pending payouts of one batch whose marker this run claims. Each message holds
    the payout's ticket as read, so it takes the place of a lost postponed message; if that one
    was only late, whichever of the two is postponed first drops the other."""
    tally: Counter[str] = Counter()
    claimed: list[dict[str, Any]] = []
    for marker, payout in pending:
        if deadline.passed:
            tally["requeue_deferred"] += 1
        elif store.claim_requeue(marker, clock.text(now), requeue_due_before(marker, now, settings.grace_seconds)):
            claimed.append(PayoutMessage(payout_id=payout.id, ticket=payout.ticket).model_dump(exclude_defaults=True))
        else:
            tally["requeue_claimed_elsewhere"] += 1
    if claimed:
        queues.send_batch(settings.payouts_queue_url, claimed)
        _repair("requeued", len(claimed))
        tally["requeued"] += len(claimed)
    return tally


def _delete_marker(marker: OutboxMarker, deadline: Deadline) -> str:
    """Remove the marker a finished payout left behind."""
    if deadline.passed:
        return "marker_delete_deferred"
    store.delete_marker(marker)
    _repair("marker_deleted")
    return "markers_deleted"


def _first_shard(now: datetime) -> int:
    """Where this run starts its walk of the outbox shards. It moves on by one shard a minute, so
    when runs keep stopping at their deadline, no shard is always the one left for later."""
    return int(now.timestamp() // 60) % len(store.outbox_shards())


def reconcile_payouts(now: datetime, deadline: Deadline, settings: ReconcileSettings, provider: PaymentProvider) -> dict[str, Any]:
    """The scheduled job: repair every unfinished payout whose marker is older than the grace period.

    Work not started by ``deadline`` (shards not read, batches not re-enqueued, stuck payouts not
    looked up) is counted as deferred and left to the next run."""
    grace_cutoff = now - timedelta(seconds=settings.grace_seconds)
    stuck_cutoff = now - timedelta(seconds=settings.stuck_seconds)
    tally: Counter[str] = Counter()
    finished: list[OutboxMarker] = []
    pending: list[tuple[OutboxMarker, StoredPayout]] = []
    stuck: list[tuple[OutboxMarker, StoredPayout]] = []
    shards = list(store.outbox_shards())
    first = _first_shard(now)
    for shard in shards[first:] + shards[:first]:
        if deadline.passed:
            tally["shards_deferred"] += 1
            continue
        markers = store.old_markers(shard, clock.text(grace_cutoff))
        if not markers:
            continue
        found = store.get_many([m.payout_id for m in markers])
        for marker in markers:
            payout = found.get(marker.payout_id)
            tally["markers"] += 1
            if payout is None:
                tally["orphan_markers"] += 1
                logger.warning("unfinished-payout marker without a payout", extra={"payout_id": marker.payout_id})
                continue
            if payout.status.terminal:
                finished.append(marker)
            elif payout.status is PayoutStatus.PENDING:
                if waiting := _message_may_be_waiting(marker, payout, now, settings):
                    tally[waiting] += 1
                else:
                    pending.append((marker, payout))
            elif _older_than(payout.updated_at, stuck_cutoff):
                stuck.append((marker, payout))
    # Oldest first, so a backlog bigger than one run is worked off in the order it built up.
    pending.sort(key=lambda entry: entry[0].created_at)
    pending = _certainly_missing(pending, deadline, settings, tally)
    stuck.sort(key=lambda entry: entry[0].created_at)
    batches = [pending[start : start + 10] for start in range(0, len(pending), 10)]
    # Reading is done; every write and lookup from here on checks the deadline before it starts.
    with ThreadPoolExecutor(max_workers=PROVIDER_CONCURRENCY) as pool:
        requeued = pool.map(lambda batch: _requeue(batch, deadline, now, settings), batches)
        looked_up = pool.map(lambda entry: _ask_provider(provider, entry[1], deadline), stuck)
        deleted = pool.map(lambda marker: _delete_marker(marker, deadline), finished)
        for counts in requeued:
            tally.update(counts)
        tally.update(looked_up)
        tally.update(deleted)
    result = {name: count for name, count in tally.items() if count}
    logger.info("payouts reconciled", extra={"result": result})
    return result
