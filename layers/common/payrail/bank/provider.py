"""The bank's HTTP API (OAuth token endpoint, accounts, Plaid-style ``transactions/sync``) over httpx.

Answers become typed results or the exceptions below; no token ever goes into a log line or an
exception message. ``TRANSPORT`` lets tests route the calls in-process to the sandbox bank.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from payrail.bank.envelope import ProviderTokens
from payrail.errors import DependencyFailure
from payrail.settings import BankProviderSettings

TRANSPORT: httpx.BaseTransport | None = None


class BankUnauthorized(Exception):
    """The access token was refused (expired or revoked)."""


class BankGrantRejected(Exception):
    """The token endpoint refused the code or the refresh token: the user must link again."""


class BankRateLimited(Exception):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__(f"rate limited; retry after {retry_after}")
        self.retry_after = retry_after


class MutationDuringPagination(Exception):
    """The bank's data changed while we paged; the run must restart from the cursor it began with."""


@dataclass
class SyncPage:
    added: list[dict[str, Any]] = field(default_factory=list)
    modified: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str = ""
    has_more: bool = False


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date; fall back to our own backoff


class BankClient:
    def __init__(self, settings: BankProviderSettings) -> None:
        self.settings = settings
        self._http = httpx.Client(
            base_url=self.settings.bank_base_url.rstrip("/"), timeout=self.settings.bank_timeout_seconds, transport=TRANSPORT
        )

    def __enter__(self) -> BankClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def authorize_url(self, state: str, code_challenge: str, login_hint: str | None) -> str:
        query = {
            "response_type": "code",
            "client_id": self.settings.bank_client_id,
            "redirect_uri": self.settings.redirect_uri,
            "scope": "accounts transactions",
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        if login_hint:
            query["login_hint"] = login_hint
        return f"{self.settings.bank_base_url.rstrip('/')}/authorize?{urlencode(query)}"

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise DependencyFailure(f"The bank did not answer: {type(error).__name__}") from error

    def _token(self, form: dict[str, str]) -> ProviderTokens:
        response = self._request("POST", "/token", data={**form, "client_id": self.settings.bank_client_id})
        if response.status_code in (400, 401):
            raise BankGrantRejected(str(_json(response).get("error", "invalid_grant")))
        if response.status_code != 200:
            raise DependencyFailure(f"The bank's token endpoint answered {response.status_code}")
        document = _json(response)
        try:
            return ProviderTokens(
                access_token=str(document["access_token"]),
                refresh_token=str(document["refresh_token"]),
                access_expires_at=int(time.time()) + int(document["expires_in"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DependencyFailure("The bank's token answer is malformed") from error

    def exchange_code(self, code: str, code_verifier: str) -> ProviderTokens:
        return self._token(
            {"grant_type": "authorization_code", "code": code, "code_verifier": code_verifier, "redirect_uri": self.settings.redirect_uri}
        )

    def refresh(self, refresh_token: str) -> ProviderTokens:
        return self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def _authorized(self, method: str, path: str, access_token: str, **kwargs: Any) -> httpx.Response:
        response = self._request(method, path, headers={"Authorization": f"Bearer {access_token}"}, **kwargs)
        if response.status_code == 401:
            raise BankUnauthorized()
        if response.status_code == 429:
            raise BankRateLimited(_retry_after(response))
        return response

    def accounts(self, access_token: str) -> list[dict[str, Any]]:
        response = self._authorized("GET", "/accounts", access_token)
        if response.status_code != 200:
            raise DependencyFailure(f"The bank's accounts endpoint answered {response.status_code}")
        return list(_json(response).get("accounts", []))

    def transactions_sync(self, access_token: str, cursor: str, count: int) -> SyncPage:
        response = self._authorized("POST", "/transactions/sync", access_token, json={"cursor": cursor, "count": count})
        if response.status_code == 400 and _json(response).get("error_code") == "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION":
            raise MutationDuringPagination()
        if response.status_code != 200:
            raise DependencyFailure(f"The bank's transactions/sync answered {response.status_code}")
        document = _json(response)
        try:
            return SyncPage(
                added=list(document["added"]),
                modified=list(document["modified"]),
                removed=list(document["removed"]),
                next_cursor=str(document["next_cursor"]),
                has_more=bool(document["has_more"]),
            )
        except (KeyError, TypeError) as error:
            raise DependencyFailure("The bank's transactions/sync answer is malformed") from error


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
