"""The payout status machine: pending → submitted → processing → paid | failed, forward only.

``paid`` and ``failed`` are terminal. Any later status may be reached directly (a webhook for
``paid`` may arrive before the one for ``processing``); nothing ever moves backwards. The same
rule is enforced in DynamoDB by the condition ``payrail.db.payouts`` builds from
:func:`sources_of`, so a concurrent or late writer cannot break it between a read and a write.
"""

from __future__ import annotations

from enum import StrEnum


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
