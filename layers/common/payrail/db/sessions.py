"""Users, sessions and refresh tokens in the table.

A session is a refresh-token family. Refresh tokens are opaque random strings stored only as
SHA-256 digests. Rotation is one transaction: the presented token must still be ``active``
(it becomes ``used``), the new token is written, and the session must not be revoked.

A token presented again after rotation finds itself ``used``. Within a short grace window
(``grace_seconds``, the auth function's ``REFRESH_REUSE_GRACE_SECONDS``) that is two tabs or a
retry after a lost answer, and it gets the *same* successor pair back. After the window it is
reuse (RFC 9700 section 4.14.2) and the whole family is revoked.

To hand the successor back, the used token's item keeps it *sealed*: AES-256-GCM under a key
derived (HKDF-SHA256) from the presented refresh token itself. The table holds only the token's
SHA-256 digest (its key) and this ciphertext, so whoever reads the table cannot open it; only
a holder of the old token can, and that holder was entitled to the successor anyway. A KMS
data key would add a KMS call to every refresh and an IAM grant, and protect nothing more.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict

from payrail.db import TransactionCancelled, keys, table
from payrail.errors import Unauthorized

SESSION_SECONDS = 30 * 24 * 3600
DEFAULT_REUSE_GRACE_SECONDS = 10
_SEAL_INFO = b"payrail refresh successor v1"


@dataclass(frozen=True)
class Issued:
    user_id: str
    session_id: str
    refresh_token: str


@dataclass(frozen=True)
class Rotated:
    """The successor pair of a rotation (also what a retry within the grace window gets)."""

    user_id: str
    session_id: str
    refresh_token: str
    access_token: str


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


def _seal_key(presented: str, session_id: str) -> AESGCM:
    salt = session_id.encode()
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_SEAL_INFO).derive(presented.encode()))


def _seal(presented: str, session_id: str, successor: dict[str, str]) -> str:
    nonce = secrets.token_bytes(12)
    sealed = _seal_key(presented, session_id).encrypt(nonce, json.dumps(successor).encode(), session_id.encode())
    return base64.b64encode(nonce + sealed).decode()


def _unseal(presented: str, session_id: str, sealed: str) -> dict[str, str] | None:
    try:
        raw = base64.b64decode(sealed)
        return dict(json.loads(_seal_key(presented, session_id).decrypt(raw[:12], raw[12:], session_id.encode())))
    except (ValueError, InvalidTag):
        return None


def rotate(
    refresh_token: str,
    access_token_for: Callable[[str, str], str],
    grace_seconds: int = DEFAULT_REUSE_GRACE_SECONDS,
    now: float | None = None,
) -> Rotated:
    """Exchange a refresh token for a new one (and the access token ``access_token_for(user_id,
    session_id)`` issues) in the same session, once; again within ``grace_seconds``, the same pair."""
    now = now if now is not None else time.time()
    db = table()
    stored = db.get(keys.refresh_token(refresh_token))
    if not stored or stored["expires_at"] <= now:
        raise Unauthorized("The refresh token is not valid.")
    session_id, user_id = str(stored["session_id"]), str(stored["user_id"])
    if stored.get("status") == "used":
        return _reused(refresh_token, stored, grace_seconds, now)
    new_token = secrets.token_urlsafe(32)
    access_token = access_token_for(user_id, session_id)
    sealed = _seal(refresh_token, session_id, {"refresh_token": new_token, "access_token": access_token})
    try:
        db.transact_write(
            [
                db.update_action(
                    keys.refresh_token(refresh_token),
                    "SET #status = :used, used_at = :now, successor = :sealed",
                    condition="#status = :active AND expires_at > :now",
                    names={"#status": "status"},
                    values={":used": "used", ":active": "active", ":now": int(now), ":sealed": sealed},
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
            # A concurrent rotation of the same token won the race: this is the grace case too.
            return _reused(refresh_token, old.item, grace_seconds, now)
        raise Unauthorized("The refresh token or its session is no longer valid.") from cancelled
    return Rotated(user_id, session_id, new_token, access_token)


def _reused(refresh_token: str, stored: dict, grace_seconds: int, now: float) -> Rotated:
    """A used token again: the sealed successor within the grace window, else revoke the family."""
    session_id, user_id = str(stored["session_id"]), str(stored["user_id"])
    used_at = int(stored.get("used_at", 0))
    successor = _unseal(refresh_token, session_id, str(stored.get("successor", "")))
    if successor and now - used_at <= grace_seconds and not is_revoked(session_id):
        return Rotated(user_id, session_id, successor["refresh_token"], successor["access_token"])
    revoke(session_id)
    raise RefreshReuse("This refresh token was already used; the session has been revoked.")


def session_of(refresh_token: str) -> str | None:
    stored = table().get(keys.refresh_token(refresh_token))
    return str(stored["session_id"]) if stored else None


def revoke(session_id: str) -> None:
    """Revoke the session: none of its refresh tokens works any more."""
    table().update(keys.session(session_id), "SET revoked = :yes", condition="attribute_exists(pk)", values={":yes": True}, returns="NONE")


def is_revoked(session_id: str) -> bool:
    stored = table().get(keys.session(session_id))
    return not stored or bool(stored.get("revoked"))
