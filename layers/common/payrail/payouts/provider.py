"""The payment provider's client: one httpx call per submission, classified into the outcomes
the worker acts on. The payout id is the provider's ``Idempotency-Key``, so a retry after a
timeout (when the provider may have accepted the first request) can never pay twice."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from payrail.errors import DependencyFailure
from payrail.observability import CORRELATION_HEADER, correlation_id
from payrail.settings import TableSettings, load


class ProviderSettings(TableSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)
    payment_provider_url: str = Field(alias="PAYMENT_PROVIDER_URL", min_length=1)
    provider_timeout_seconds: float = Field(alias="PROVIDER_TIMEOUT_SECONDS", default=3.0, gt=0)


class ProviderTransientError(DependencyFailure):
    """Worth retrying later: a timeout, a 429 (with its Retry-After), a 5xx or no connection."""

    def __init__(self, kind: str, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.retry_after = retry_after


class ProviderRejected(Exception):
    """A permanent 4xx: the request itself is wrong and retrying cannot help."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Accepted:
    provider_reference: str
    status: str


@cache
def http_client() -> httpx.Client:
    settings = load(ProviderSettings)
    return httpx.Client(base_url=settings.payment_provider_url.rstrip("/"), timeout=settings.provider_timeout_seconds)


def _retry_after(response: httpx.Response) -> int | None:
    value = response.headers.get("retry-after", "")
    return min(int(value), 900) if value.isdigit() else None


def submit(payout: dict[str, Any]) -> Accepted:
    body = {
        "amount": payout["amount"],
        "currency": payout["currency"],
        "beneficiary": payout["beneficiary"],
        "reference": payout["reference"],
        "metadata": {"payout_id": payout["id"]},
    }
    headers = {"Idempotency-Key": payout["id"], CORRELATION_HEADER: correlation_id()}
    try:
        response = http_client().post("/v1/payouts", json=body, headers=headers)
    except httpx.TimeoutException as error:
        raise ProviderTransientError("timeout", f"The provider did not answer in time: {type(error).__name__}") from error
    except httpx.TransportError as error:
        raise ProviderTransientError("connection", f"The provider is unreachable: {type(error).__name__}") from error
    if response.status_code == 429:
        raise ProviderTransientError("rate_limited", "The provider is rate limiting", retry_after=_retry_after(response))
    if response.status_code >= 500 or response.status_code in (408, 409):
        # 409 is how providers answer a concurrent request with the same key still in flight.
        raise ProviderTransientError("server_error", f"The provider answered {response.status_code}", retry_after=_retry_after(response))
    if response.status_code >= 400:
        raise ProviderRejected(response.status_code, _reason(response))
    try:
        answer = response.json()
        return Accepted(provider_reference=str(answer["id"]), status=str(answer.get("status", "accepted")))
    except (ValueError, KeyError, TypeError) as error:
        raise ProviderTransientError("bad_response", "The provider's answer has no payout id") from error


def _reason(response: httpx.Response) -> str:
    try:
        document = response.json()
        text = document.get("detail") or document.get("title") or document.get("error")
    except (ValueError, AttributeError):
        text = None
    return f"provider rejected the payout ({response.status_code}): {str(text or response.reason_phrase)[:200]}"
