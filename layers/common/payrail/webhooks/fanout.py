"""The fan-out: each merchant event a stream record means, to every endpoint that wants it.

For each event: the event is recorded (once; redeliver sends it again from there), the owner's
enabled endpoints subscribed to its type are read, and each (event, endpoint) pair gets its task,
created once (``attribute_not_exists``), and its delivery message. The message is sent even when
the task already existed and is still pending: a retry after a crash between the task's write and
the send must still send, and a duplicate message costs at most a duplicate delivery, which
at-least-once allows (the worker drops a message for a pair already settled). Any failure fails
the record, and Lambda retries the stream from it (ReportBatchItemFailures).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from payrail import clock
from payrail.db import merchant_webhooks as store
from payrail.observability import logger, metrics
from payrail.settings import WebhookFanOutSettings
from payrail.webhooks.delivery_messages import DeliveryMessage, send
from payrail.webhooks.merchant_events import MerchantEvent, events_of


def fan_out_record(settings: WebhookFanOutSettings, record: Mapping[str, Any]) -> int:
    """Fan out every event of one stream record; returns how many messages were sent."""
    return sum(fan_out(settings, event) for event in events_of(record))


def fan_out(settings: WebhookFanOutSettings, event: MerchantEvent) -> int:
    now = time.time()
    expires_at = int(now) + settings.webhook_event_retention_days * 86400
    body = event.body()
    store.record_event(
        {"id": event.id, "user_id": event.user_id, "type": event.type, "body": body, "created_at": event.created_at}, expires_at
    )
    metrics.add_metric(name="WebhookEventsEmitted", unit=MetricUnit.Count, value=1)
    sent = 0
    for endpoint in store.endpoints_of(event.user_id):
        if endpoint.status != "enabled" or event.type not in endpoint.events:
            continue
        existing = store.create_task(endpoint.id, event.id, event.user_id, clock.from_epoch(now), expires_at)
        if existing in ("delivered", "failed"):
            continue
        message = DeliveryMessage(event_id=event.id, event_type=event.type, endpoint_id=endpoint.id, body=body, due_at=now)
        send(settings.webhook_deliveries_queue_url, message, now)
        sent += 1
    logger.info("merchant event fanned out", extra={"event_id": event.id, "event_type": event.type, "deliveries": sent})
    return sent
