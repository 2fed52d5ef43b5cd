"""The one ownership check: a signed-in user sees only their own things.

Another user's payout, connection or endpoint is answered exactly like a missing one (404), so
its existence is never revealed.
"""

from __future__ import annotations

from typing import Protocol

from payrail.errors import NotFound


class Owned(Protocol):
    @property
    def user_id(self) -> str: ...


def owned[T: Owned](found: T | None, user_id: str, missing: str) -> T:
    """``found`` if it belongs to ``user_id``; NotFound (with ``missing`` as its detail) otherwise."""
    if found is None or found.user_id != user_id:
        raise NotFound(missing)
    return found
