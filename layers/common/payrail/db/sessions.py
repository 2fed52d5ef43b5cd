"""Users, sessions and refresh tokens in the table.

A session is a refresh-token family. Refresh tokens are opaque random strings stored only as
SHA-256 digests. Rotation is one transaction: the presented token must still be ``active``
(it becomes ``used``), the new token is written, and the session must not be revoked. A token
that is presented again after rotation finds itself ``used``: that is reuse (RFC 9700), and the
whole family is revoked.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from payrail.db import TransactionCancelled, keys, table
from payrail.errors import Unauthorized

SESSION_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class Issued:
    user_id: str
    session_id: str
    refresh_token: str


class RefreshReuse(Unauthorized):
    """A rotated refresh token was presented again; its session has been revoked."""


def upsert_user(user_id: str, email: str, name: str, now_iso: str) -> None:
    table().update(
        keys.user(user_id),
        "SET email = :email, #name = :name, updated_at = :now, created_at = if_not_exists(created_at, :now)",
        names={"#name": "name"},
        values={":email": email, ":name": name, ":now": now_iso},
        returns="NONE",
    )


class User(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    email: str
    name: str


def get_user(user_id: str) -> User | None:
    item = table().get(keys.user(user_id))
    return User.model_validate(item) if item else None


def start_session(user_id: str, now: float | None = None) -> Issued:
    now = now if now is not None else time.time()
    session_id, token = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
    expires = int(now) + SESSION_SECONDS
    db = table()
    db.transact_write(
        [
            db.put_action(
                {**keys.session(session_id), "user_id": user_id, "created_at": int(now), "revoked": False, "expires_at": expires},
                condition="attribute_not_exists(pk)",
            ),
            db.put_action(
                {**keys.refresh_token(token), "session_id": session_id, "user_id": user_id, "status": "active", "expires_at": expires},
                condition="attribute_not_exists(pk)",
            ),
        ]
    )
    return Issued(user_id, session_id, token)


def rotate(refresh_token: str, now: float | None = None) -> Issued:
    """Exchange a refresh token for a new one in the same session, once."""
    now = now if now is not None else time.time()
    db = table()
    stored = db.get(keys.refresh_token(refresh_token))
    if not stored or stored["expires_at"] <= now:
        raise Unauthorized("The refresh token is not valid.")
    session_id, user_id = stored["session_id"], stored["user_id"]
    new_token = secrets.token_urlsafe(32)
    try:
        db.transact_write(
            [
                db.update_action(
                    keys.refresh_token(refresh_token),
                    "SET #status = :used, used_at = :now",
                    condition="#status = :active AND expires_at > :now",
                    names={"#status": "status"},
                    values={":used": "used", ":active": "active", ":now": int(now)},
                    return_on_failure=True,
                ),
                db.put_action(
                    {
                        **keys.refresh_token(new_token),
                        "session_id": session_id,
                        "user_id": user_id,
                        "status": "active",
                        "expires_at": stored["expires_at"],
                    },
                    condition="attribute_not_exists(pk)",
                ),
                db.check_action(keys.session(session_id), "revoked = :no AND expires_at > :now", values={":no": False, ":now": int(now)}),
            ]
        )
    except TransactionCancelled as cancelled:
        old = cancelled.reason(0)
        if old.code == "ConditionalCheckFailed" and old.item and old.item.get("status") == "used":
            revoke(session_id)
            raise RefreshReuse("This refresh token was already used; the session has been revoked.") from cancelled
        raise Unauthorized("The refresh token or its session is no longer valid.") from cancelled
    return Issued(user_id, session_id, new_token)


def session_of(refresh_token: str) -> str | None:
    stored = table().get(keys.refresh_token(refresh_token))
    return str(stored["session_id"]) if stored else None


def revoke(session_id: str) -> None:
    """Revoke the session: none of its refresh tokens works any more."""
    table().update(keys.session(session_id), "SET revoked = :yes", condition="attribute_exists(pk)", values={":yes": True}, returns="NONE")


def is_revoked(session_id: str) -> bool:
    stored = table().get(keys.session(session_id))
    return not stored or bool(stored.get("revoked"))
