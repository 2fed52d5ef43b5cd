"""moto's SQS long polls, made interruptible, so that the local stack's pollers can long-poll as
Lambda's do (``WaitTimeSeconds`` 20) and still stop at once with their stack.

moto answers a ``ReceiveMessage`` with ``WaitTimeSeconds`` by scanning the queue, then waiting on
the queue's condition (which ``add_message`` notifies) at most a second at a time, rescanning
until a message is there or the wait is over (``moto.sqs.models.SQSBackend.receive_message``).
Nothing can end that wait early: a poller stopping with its stack would hold the stack's shutdown
for the rest of its 20 s. With this adaptation the same loop runs here, around moto's own scan
(``receive_message`` with no wait), and ``release_long_polls`` ends every wait in progress in this
process: each answers with what it has, as a long poll that timed out does. That answer is one SQS
may give a long poll at any time, so a live stack's pollers (moto's state is the process's) just
poll again.

It also makes a receive cost what its messages cost. For every message it hands out, moto checks
the retention period through ``get_queue_attributes``, which computes every attribute of the
queue three times over, ``ApproximateNumberOfMessages`` and its siblings included, each a scan of
the whole queue with two clock reads per message: one receive of 10 from a queue of 650 messages
made ~60,000 clock reads, and under a 500-payout chaos run that was a third of the local stack's
CPU. The check reads the queue's retention period itself here, with moto's own arithmetic.
"""

from __future__ import annotations

import threading
import time
from typing import Any

_lock = threading.Lock()
_waiting: dict[int, tuple[Any, int]] = {}  # id(queue) -> (queue, how many long polls wait on it)
_epoch = [0]  # bumped by release_long_polls: a wait that began in an earlier epoch ends
MOTO_RESCAN_SECONDS = 1.0  # moto's own wait between rescans (time-based visibility and delays)


def release_long_polls() -> None:
    """End every long poll waiting in this process's moto now."""
    with _lock:
        _epoch[0] += 1
        queues = [queue for queue, _ in _waiting.values()]
    for queue in queues:
        with queue._messages_lock:
            queue._messages_lock.notify_all()


def adapt_moto_sqs() -> None:
    """Patch moto's SQS backend in this process (idempotent)."""
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    original = SQSBackend.receive_message
    if getattr(original, "_payrail_interruptible", False):
        return

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        # moto's check, with the retention period read from the queue instead of from every attribute.
        retention_period = self.get_queue(queue_name).message_retention_period
        return bool(retention_period + message.sent_timestamp / 1000 > unix_time())

    def receive_message(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> Any:
        deadline = time.monotonic() + wait_seconds_timeout
        epoch = _epoch[0]
        while True:
            result = original(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            left = deadline - time.monotonic()
            if result or left <= 0 or _epoch[0] != epoch:
                return result
            queue = self.get_queue(queue_name)
            with _lock:
                _waiting[id(queue)] = (queue, _waiting.get(id(queue), (queue, 0))[1] + 1)
            try:
                with queue._messages_lock:
                    queue._messages_lock.wait_for(lambda q=queue: q.messages or _epoch[0] != epoch, timeout=min(MOTO_RESCAN_SECONDS, left))
            finally:
                with _lock:
                    left_waiting = _waiting[id(queue)][1] - 1
                    if left_waiting:
                        _waiting[id(queue)] = (queue, left_waiting)
                    else:
                        del _waiting[id(queue)]

    receive_message._payrail_interruptible = True  # type: ignore[attr-defined]
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    is_message_valid_based_on_retention_period.moto = SQSBackend.is_message_valid_based_on_retention_period  # type: ignore[attr-defined]
    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]
