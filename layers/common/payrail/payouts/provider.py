"""The payment provider's one client: ``submit`` a payout, ask for a payout's ``status``.

Answers are classified into the outcomes the callers act on. Only the provider's documented
business rejection (a 422 whose ``code`` is in :data:`payrail.domain.failures.PROVIDER_REJECTIONS`)
is final for a payout. Every other refusal is an outage, ours or the provider's, and retryable: a
401 or 403 (a revoked or wrong API key), a 404 or 405 (a wrong base URL), any other 4xx we do not
know; these also raise an alarm (``refused`` is set). The provider's own text is logged, never
stored on the payout.

The payout id is the provider's
``Idempotency-Key``, so a retry after a timeout (when the provider may have accepted the first
request) can never pay twice. The correlation id goes with every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from payrail.db.payouts import StoredPayout
from payrail.domain import money
from payrail.domain.failures import Failure, rejection
from payrail.errors import DependencyFailure
from payrail.observability import CORRELATION_HEADER, correlation_id, logger
from payrail.settings import ProviderSettings

TRANSPORT: httpx.BaseTransport | None = None  # tests route the calls in-process


class ProviderTransientError(DependencyFailure):
    """Worth retrying later: a timeout, a 429 (with its Retry-After), a 5xx, no connection, or a
    refusal that is not a documented rejection (``refused``: authentication, configuration or an
    unknown 4xx, which someone has to look at)."""

    def __init__(self, kind: str, detail: str, retry_after: int | None = None, refused: bool = False) -> None:
        super().__init__(detail)
        self.kind = kind
        self.retry_after = retry_after
        self.refused = refused


class ProviderRejected(Exception):
    """The provider's documented business rejection of the payout: final, retrying cannot help."""

    def __init__(self, status: int, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.status = status
        self.failure = failure

    @property
    def reason(self) -> str:
        return self.failure.reason


@dataclass(frozen=True)
class Accepted:
    provider_reference: str
    status: str


def _retry_after(response: httpx.Response) -> int | None:
    value = response.headers.get("retry-after", "")
    return min(int(value), 900) if value.isdigit() else None


class PaymentProvider:
    def __init__(self, settings: ProviderSettings) -> None:
        self.timeout = settings.provider_timeout_seconds
        self._http = httpx.Client(base_url=settings.payment_provider_url.rstrip("/"), timeout=self.timeout, transport=TRANSPORT)

    def _request(self, method: str, path: str, timeout: float | None = None, **kwargs: Any) -> httpx.Response:
        headers = {CORRELATION_HEADER: correlation_id(), **kwargs.pop("headers", {})}
        try:
            return self._http.request(method, path, headers=headers, timeout=timeout or self.timeout, **kwargs)
        except httpx.TimeoutException as error:
            raise ProviderTransientError("timeout", f"The provider did not answer in time: {type(error).__name__}") from error
        except httpx.TransportError as error:
            raise ProviderTransientError("connection", f"The provider is unreachable: {type(error).__name__}") from error

    @staticmethod
    def _transient(response: httpx.Response) -> None:
        if response.status_code == 429:
            raise ProviderTransientError("rate_limited", "The provider is rate limiting", retry_after=_retry_after(response))
        if response.status_code >= 500 or response.status_code in (408, 409):
            # 409 is how providers answer a concurrent request with the same key still in flight.
            raise ProviderTransientError(
                "server_error", f"The provider answered {response.status_code}", retry_after=_retry_after(response)
            )

    def submit(self, payout: StoredPayout) -> Accepted:
        # The provider takes ``amount`` in the currency's ISO 4217 minor units (UGX: whole
        # shillings; ZAR: cents), and ``amount_decimal`` in major units, which it checks against it.
        body = {
            "amount": payout.amount,
            "amount_decimal": money.to_decimal_string(payout.amount, payout.currency),
            "currency": payout.currency,
            "beneficiary": payout.beneficiary,
            "reference": payout.reference,
            "metadata": {"payout_id": payout.id},
        }
        response = self._request("POST", "/v1/payouts", json=body, headers={"Idempotency-Key": payout.id})
        self._transient(response)
        if response.status_code >= 400:
            failure = rejection(_document(response).get("code")) if response.status_code == 422 else None
            if failure is not None:
                raise ProviderRejected(response.status_code, failure)
            raise _refused(response)
        try:
            answer = response.json()
            return Accepted(provider_reference=str(answer["id"]), status=str(answer.get("status", "accepted")))
        except (ValueError, KeyError, TypeError) as error:
            raise ProviderTransientError("bad_response", "The provider's answer has no payout id") from error

    def status(self, payout: StoredPayout, timeout: float | None = None) -> dict[str, Any] | None:
        """The provider's view of ``payout`` (``GET /v1/payouts/{reference}``), or None if it has none."""
        reference = payout.provider_reference or payout.id
        response = self._request("GET", f"/v1/payouts/{reference}", timeout=timeout)
        if response.status_code == 404:
            return None
        self._transient(response)
        if response.status_code >= 400:
            raise ProviderTransientError("bad_response", f"The provider answered {response.status_code}")
        try:
            answer: Any = response.json()
        except ValueError as error:
            raise ProviderTransientError("bad_response", "The provider's status answer is not JSON") from error
        return answer if isinstance(answer, dict) else None


def _document(response: httpx.Response) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


# What a refusal that is not a documented rejection most likely means, by status.
_REFUSAL_KINDS = {401: "unauthorized", 403: "unauthorized", 404: "misconfigured", 405: "misconfigured"}


def _refused(response: httpx.Response) -> ProviderTransientError:
    """A 4xx the provider's contract does not document as a rejection: retried, and alarmed on.
    Its text goes to the log (cut short), not to the payout."""
    status = response.status_code
    kind = _REFUSAL_KINDS.get(status, "unrecognised")
    document = _document(response)
    text = document.get("detail") or document.get("title") or document.get("error") or response.reason_phrase
    logger.error(
        "the payment provider refused the call",
        extra={
            "provider_status": status,
            "kind": kind,
            "provider_code": str(document.get("code", ""))[:64],
            "provider_text": str(text)[:200],
        },
    )
    return ProviderTransientError(kind, f"The provider refused the call ({status}, {kind})", refused=True)
