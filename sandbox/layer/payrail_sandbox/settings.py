"""The sandbox functions' settings (dev stage and local only), composed like the product's.

The sandbox function puts its settings in the resolver's context for every request
(``app.append_context(settings=...)``); its routers read them with :func:`of`.
"""

from __future__ import annotations

from typing import Any, Literal

from payrail.settings import PublicUrlSettings, Settings, TableSettings, WebhookSecretSettings
from pydantic import Field

MAX_SQS_DELAY = 900


class SandboxWebhookSettings(Settings):
    queue_url: str = Field(alias="SANDBOX_WEBHOOKS_QUEUE_URL", default="")
    delay_seconds: int = Field(alias="SANDBOX_WEBHOOK_DELAY_SECONDS", default=2, ge=0, le=MAX_SQS_DELAY // 2)
    failure_percent: int = Field(alias="SANDBOX_WEBHOOK_FAILURE_PERCENT", default=0, ge=0, le=100)
    scheme: Literal["standard", "jwt"] = Field(alias="SANDBOX_WEBHOOK_SCHEME", default="standard")


class SandboxSettings(TableSettings, PublicUrlSettings, SandboxWebhookSettings):
    """The sandbox providers' function."""

    # Seals the identity provider's signing keys: the sandbox's own key, never the bank tokens' key.
    sandbox_key_id: str = Field(alias="SANDBOX_KEY_ID", min_length=1)

    oidc_client_id: str = Field(default="payrail-sandbox", alias="SANDBOX_OIDC_CLIENT_ID")
    oidc_client_secret_arn: str = Field(alias="SANDBOX_OIDC_CLIENT_SECRET_ARN")
    # How long the payment provider's callers (the payout worker, reconciliation) wait for an
    # answer: a "timeout" fault sleeps past it, whatever the stack's PaymentProviderTimeoutSeconds.
    payments_caller_timeout_seconds: float = Field(alias="SANDBOX_PAYMENTS_CALLER_TIMEOUT_SECONDS", default=3.0, ge=0)

    @property
    def issuer(self) -> str:
        return self.public_base_url.rstrip("/") + "/sandbox/idp"

    @property
    def redirect_uris(self) -> frozenset[str]:
        return frozenset({self.public_base_url.rstrip("/") + "/auth/callback"})


class SenderSettings(TableSettings, SandboxWebhookSettings, WebhookSecretSettings):
    """The sandbox webhook sender's function."""

    webhook_url: str = Field(alias="WEBHOOK_URL", min_length=1)


def of(router: Any) -> SandboxSettings:
    """The settings the sandbox function put in the current request's context."""
    settings = router.context.get("settings")
    assert isinstance(settings, SandboxSettings), "the sandbox function puts its settings in the resolver's context"
    return settings
