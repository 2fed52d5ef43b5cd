"""The delivery queue's message: one (event, endpoint) pair's next try, and how it is queued."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from payrail import queues

SQS_MAX_DELAY_SECONDS = 900


class DeliveryMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: str = Field(min_length=1)
    event_type: str
    endpoint_id: str = Field(min_length=1)
    body: str
    generation: int = 0
    try_index: int = 0
    due_at: float = 0
    redeliver: bool = False


def send(queue_url: str, message: DeliveryMessage, now: float | None = None) -> None:
    """Queue ``message``, delayed until its ``due_at`` as far as SQS allows (the rest is chained)."""
    wait = message.due_at - (time.time() if now is None else now)
    queues.send(queue_url, message.model_dump(mode="json"), delay_seconds=max(0, min(SQS_MAX_DELAY_SECONDS, int(wait))))
