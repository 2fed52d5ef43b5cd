"""Why a payout failed, as the API shows it in ``failure_reason``: ``"<code>: <message>"``, a
stable code and a short message of the project's own, never the provider's text (which may
change, may leak its internals, and is not ours to show a client).

The codes are listed in the README (Payouts, "Failure reasons").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    code: str
    message: str

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.message}"


BENEFICIARY_ACCOUNT_CLOSED = Failure("beneficiary_account_closed", "The beneficiary's account is closed.")
# A failure the provider reported (a payout.failed webhook, its status answer) without a code we know.
PROVIDER_FAILED = Failure("provider_failed", "The payment provider reported that the payout failed.")

# The payment provider's documented business rejections: a 422 whose problem document carries one
# of these ``code`` values is a statement about the payout itself, and final. Nothing else is.
PROVIDER_REJECTIONS: dict[str, Failure] = {
    "account_closed": BENEFICIARY_ACCOUNT_CLOSED,
}


def rejection(code: object) -> Failure | None:
    """The failure a provider rejection ``code`` means, or None when it is not a documented one."""
    return PROVIDER_REJECTIONS.get(code) if isinstance(code, str) else None


def reported(reason: object) -> Failure:
    """What a failure the provider reported (its ``failure_reason``: a code or free text) means."""
    return rejection(reason) or PROVIDER_FAILED
