"""Refresh-token rotation in the table: the grace window for a just-rotated token, reuse after
it, and that no usable token sits in the table in plaintext (issue 19 item 3)."""

from __future__ import annotations

import json

import pytest
from payrail.db import sessions

from tests.support import Resources

GRACE = 10


@pytest.fixture
def table_env(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> Resources:
    resources.point_at(monkeypatch, TABLE_NAME=resources.ref("Table"))
    return resources


def _access(user_id: str, session_id: str) -> str:
    return f"access-for-{user_id}-{session_id}"


def test_reuse_within_the_window_returns_the_same_successor(table_env: Resources) -> None:
    issued = sessions.start_session("user-grace", now=1_000_000)
    first = sessions.rotate(issued.refresh_token, _access, grace_seconds=GRACE, now=1_000_000)
    again = sessions.rotate(issued.refresh_token, _access, grace_seconds=GRACE, now=1_000_000 + GRACE)
    assert (again.refresh_token, again.access_token) == (first.refresh_token, first.access_token)
    assert not sessions.is_revoked(issued.session_id)


def test_reuse_after_the_window_revokes_the_whole_family(table_env: Resources) -> None:
    # Given a token rotated once, and its successor rotated too
    issued = sessions.start_session("user-late", now=1_000_000)
    first = sessions.rotate(issued.refresh_token, _access, grace_seconds=GRACE, now=1_000_000)
    # When the old token comes back after the window
    with pytest.raises(sessions.RefreshReuse):
        sessions.rotate(issued.refresh_token, _access, grace_seconds=GRACE, now=1_000_000 + GRACE + 1)
    # Then the session is revoked and the successor is dead too
    assert sessions.is_revoked(issued.session_id)
    with pytest.raises(sessions.Unauthorized):
        sessions.rotate(first.refresh_token, _access, grace_seconds=GRACE, now=1_000_000 + GRACE + 2)


def test_no_usable_token_is_stored_in_plaintext(table_env: Resources) -> None:
    issued = sessions.start_session("user-sealed", now=1_000_000)
    first = sessions.rotate(issued.refresh_token, _access, grace_seconds=GRACE, now=1_000_000)
    scanned = table_env.client("dynamodb").scan(TableName=table_env.ref("Table"))["Items"]
    dump = json.dumps(scanned)
    assert scanned
    for secret in (issued.refresh_token, first.refresh_token, first.access_token):
        assert secret not in dump
