"""OAuth authorization attempts (sign-in and bank linking) in the table, consumed exactly once.

The record is keyed by a digest of ``state`` and deleted with a condition as it is used, so of
two concurrent callbacks with the same state exactly one wins, and an expired record (TTL
deletion lags) fails the condition too.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from payrail.db import ConditionFailed, keys, table


class StoredAttempt(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    purpose: str
    nonce: str
    code_verifier: str
    redirect_to: str
    binding: str  # a digest of the browser cookie's value
    user_id: str | None = None
    expires_at: int


def save(state_digest: str, attempt: StoredAttempt) -> None:
    table().put({**keys.oauth_state(state_digest), **attempt.model_dump()}, condition="attribute_not_exists(pk)")


def consume(state_digest: str, purpose: str, binding_digest: str, now: int) -> StoredAttempt | None:
    """The attempt, deleted as it is read, if it is for ``purpose``, from this browser and unexpired; else None."""
    try:
        item = table().delete(
            keys.oauth_state(state_digest),
            condition="attribute_exists(pk) AND binding = :binding AND purpose = :purpose AND expires_at > :now",
            values={":binding": binding_digest, ":purpose": purpose, ":now": now},
        )
    except ConditionFailed:
        return None
    return StoredAttempt.model_validate(item) if item else None
