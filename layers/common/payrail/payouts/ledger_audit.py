"""The scheduled ledger audit: every balance that changed since the last run is recomputed from
its ledger, and a difference is logged and counted (``LedgerDifferences``, which raises an
alarm), never "fixed": a balance that disagrees with its ledger is a bug to look at, and
rewriting either would hide it.

Which balances changed comes from the sparse index every balance write keeps current
(``payrail.db.keys.balance_changed_shard``), so the create path pays nothing for it and a run
reads only what changed. The window starts a little before the last run's end, because the index
is eventually consistent: a change made just before the last run may only have reached the index
after it. Auditing a balance twice is harmless. The watermark moves only when a run got through
every shard; otherwise the next run covers the same window again.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import single_metric
from aws_lambda_powertools.metrics import MetricUnit

from payrail import clock
from payrail.clock import Deadline
from payrail.db import balances, keys
from payrail.db.balances import AuditVerdict
from payrail.observability import logger, metrics

# How far before the last run's end a run starts looking: more than the index's propagation delay.
INDEX_LAG = timedelta(minutes=5)
# A balance that changed while it was being audited is audited again, this often at most.
MOVING_RETRIES = 3


def audit_ledger(now: datetime, deadline: Deadline) -> dict[str, Any]:
    watermark = balances.audit_watermark()
    last = clock.parse(watermark) if watermark else None
    # No run before: from the beginning (a sort key may not be empty; every time text sorts after "0").
    since = clock.text(last - INDEX_LAG) if last else "0"
    until = clock.text(now)
    tally: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    complete = True
    for shard in keys.balance_changed_shards():
        if deadline.passed:
            complete = False
            break
        for user_id, currency in balances.changed_balances(shard, since, until):
            if (user_id, currency) in seen:
                continue
            if deadline.passed:
                complete = False
                break
            seen.add((user_id, currency))
            tally[_audit_one(user_id, currency).value] += 1
    with single_metric(
        name="LedgerDifferences", unit=MetricUnit.Count, value=tally[AuditVerdict.DIFFERENT.value], namespace=metrics.namespace
    ):
        pass  # counted on every run, 0 included, so the alarm's series is never silent by accident
    if complete:
        balances.save_audit_watermark(until)
    else:
        tally["deferred_to_next_run"] += 1
    return {name: count for name, count in tally.items() if count}


def _audit_one(user_id: str, currency: str) -> AuditVerdict:
    for _ in range(MOVING_RETRIES):
        result = balances.audit_balance(user_id, currency)
        if result.verdict is not AuditVerdict.MOVING:
            break
    if result.verdict is AuditVerdict.DIFFERENT:
        logger.error(
            "balance differs from its ledger",
            extra={
                "user_id": user_id,
                "currency": currency,
                "available": result.available,
                "reserved": result.reserved,
                "ledger_available": result.ledger_available,
                "ledger_reserved": result.ledger_reserved,
            },
        )
    elif result.verdict is AuditVerdict.MOVING:
        logger.info("balance kept changing while audited; the next run audits it again", extra={"user_id": user_id, "currency": currency})
    return result.verdict
