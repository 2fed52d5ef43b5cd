"""The payout status machine: pending → submitted → processing → paid | failed, forward only.

``paid`` and ``failed`` are terminal. Any later status may be reached directly (a webhook for
``paid`` may arrive before the one for ``processing``); nothing ever moves backwards. The same
rule is enforced in DynamoDB by :func:`transition_condition`, so a concurrent or late writer
cannot break it between a read and a write.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class PayoutStatus(StrEnum):
    PENDING = "pending"
    SUBMITTED = "submitted"
    PROCESSING = "processing"
    PAID = "paid"
    FAILED = "failed"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def terminal(self) -> bool:
        return self in (PayoutStatus.PAID, PayoutStatus.FAILED)


_RANK = {
    PayoutStatus.PENDING: 0,
    PayoutStatus.SUBMITTED: 1,
    PayoutStatus.PROCESSING: 2,
    PayoutStatus.PAID: 3,
    PayoutStatus.FAILED: 3,
}


def can_move(current: PayoutStatus, target: PayoutStatus) -> bool:
    """Whether a payout in ``current`` may move to ``target``: strictly forward, never out of a terminal state."""
    return not current.terminal and target.rank > current.rank


def sources_of(target: PayoutStatus) -> list[PayoutStatus]:
    """Every status from which ``target`` can be reached."""
    return [status for status in PayoutStatus if can_move(status, target)]


def transition_condition(target: PayoutStatus) -> tuple[str, dict[str, str], dict[str, Any]]:
    """A condition expression (with its names and values) that holds only when the stored
    payout may move to ``target``; use it on the update that writes ``target``."""
    sources = sources_of(target)
    placeholders = [f":from_{status.value}" for status in sources]
    expression = f"attribute_exists(pk) AND #status IN ({', '.join(placeholders)})"
    return expression, {"#status": "status"}, {p: s.value for p, s in zip(placeholders, sources, strict=True)}
