"""Linking a bank connection through the bank's OAuth flow, with the same state / PKCE rules as sign-in.

``connect`` stores an attempt (``payrail.auth.oauth_state``, purpose ``bank``, bound to the
signed-in user and to the browser by an HttpOnly cookie) and sends the browser to the bank.
``callback`` consumes that attempt once, exchanges the code with the PKCE verifier, reads the
accounts, and stores the connection with its tokens sealed by KMS envelope encryption. The
tokens exist in plaintext only in memory for the length of the request.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from payrail import clock
from payrail.auth import oauth_state
from payrail.auth.tokens import Principal
from payrail.bank import envelope
from payrail.bank.provider import BankClient, BankGrantRejected, BankRateLimited, BankUnauthorized
from payrail.bank.reading import Connection, connection_view
from payrail.bank.sync import sealed_attributes
from payrail.db import bank as store
from payrail.db.bank import StoredConnection
from payrail.errors import DependencyFailure, ValidationFailed
from payrail.observability import logger
from payrail.settings import BankApiSettings

PURPOSE = "bank"
DEFAULT_REDIRECT = "/"


@dataclass(frozen=True)
class ConnectStart:
    location: str
    binding: str


def connect(settings: BankApiSettings, principal: Principal, redirect_to: str | None, login_hint: str | None) -> ConnectStart:
    target = oauth_state.safe_redirect(redirect_to, DEFAULT_REDIRECT)
    attempt = oauth_state.begin(PURPOSE, target, user_id=principal.user_id)
    with BankClient(settings) as bank:
        location = bank.authorize_url(attempt.state, attempt.code_challenge, login_hint)
    return ConnectStart(location=location, binding=attempt.binding)


@dataclass(frozen=True)
class Linked:
    connection: Connection
    redirect_to: str


def callback(settings: BankApiSettings, code: str | None, state: str | None, error: str | None, binding: str | None) -> Linked:
    consumed = oauth_state.consume(PURPOSE, state, binding)
    if error:
        raise ValidationFailed(f"The bank did not authorise the connection: {error[:64]}")
    if not code or len(code) > 512:
        raise ValidationFailed("The bank's answer has no authorisation code.")
    if not consumed.user_id:
        raise ValidationFailed("The linking attempt belongs to no user.")
    with BankClient(settings) as bank:
        try:
            tokens = bank.exchange_code(code, consumed.code_verifier)
        except BankGrantRejected as rejected:
            raise ValidationFailed("The bank refused the authorisation code.") from rejected
        try:
            accounts = bank.accounts(tokens.access_token)
        except (BankUnauthorized, BankRateLimited) as refused:
            raise DependencyFailure("The bank did not let us read the accounts; try linking again later.") from refused
    connection_id = "conn_" + secrets.token_hex(10)
    sealed = envelope.seal(tokens, connection_id, settings.tokens_key_id)
    now = clock.text()
    item: dict[str, Any] = {
        "connection_id": connection_id,
        "user_id": consumed.user_id,
        "institution": "sandbox",
        "status": "active",
        "created_at": now,
        "sync_cursor": "",
        "accounts": [
            {
                "account_id": str(a["account_id"]),
                "name": str(a.get("name", "")),
                "type": str(a.get("type", "")),
                "currency": str(a.get("currency", "")),
            }
            for a in accounts
        ],
        "access_expires_at": tokens.access_expires_at,
        "linked_at_epoch": int(time.time()),
    }
    store.create_connection(item, sealed_attributes(sealed), next_sync_at=now)
    logger.info("bank connection linked", extra={"connection_id": connection_id})
    return Linked(connection=connection_view(StoredConnection.model_validate(item)), redirect_to=consumed.redirect_to)
