"""Every function's settings: one model per function, composed of small shared pieces.

Each environment variable is declared once, in the piece that owns it; a function's model lists
the pieces its template environment gives it. A function reads its model once, at its first
invocation (its cold start), through a :class:`Once` at the top of its ``app.py``, and passes
the model (or the piece a use case needs) down; nothing below the handlers reads the
environment. Tests build these models directly.

Plain pydantic validating ``os.environ`` is all a function needs; pydantic-settings would add
dotenv files and nested sources, and about 80 ms to every cold start.
"""

from __future__ import annotations

import os
import threading
from contextvars import ContextVar
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The origin (``https://{domain}``) of the API request being served, set by the API handler
# decorator for the length of one invocation; empty outside a request (workers, schedules).
REQUEST_ORIGIN: ContextVar[str] = ContextVar("payrail_request_origin", default="")


class Settings(BaseModel):
    """A settings piece: fields name their environment variables by alias."""

    # defer_build: this module declares every function's model and a function validates one of
    # them; building every model's validator at import cost each cold start about 45 ms.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, defer_build=True)

    @classmethod
    def from_environment(cls) -> Settings:
        return cls.model_validate(dict(os.environ))


class Once[S: Settings]:
    """A function's settings, validated from its environment the first time they are asked for."""

    def __init__(self, settings_class: type[S]) -> None:
        self.settings_class = settings_class
        self._value: S | None = None
        self._lock = threading.Lock()

    def __call__(self) -> S:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self.settings_class.model_validate(dict(os.environ))
        value = self._value
        if isinstance(value, PublicUrlSettings) and not value.public_base_url:
            origin = REQUEST_ORIGIN.get()
            if origin:
                return value.served_at(origin)
        return value


# -------------------------------------------------------------------- shared pieces
class TableSettings(Settings):
    table_name: str = Field(alias="TABLE_NAME", min_length=1)


class PublicUrlSettings(Settings):
    """Where this API is reached from outside.

    ``PUBLIC_BASE_URL`` is the stack's public URL (its custom domain; the local stack's address).
    Empty means a stack deployed without one: a function behind the API cannot be told its own
    URL (its route would make the API depend on the function and the function on the API), so
    it serves each request at the origin that request came to, ``https://`` plus the API
    Gateway domain in the request context (set by API Gateway, not by the client). A URL setting
    listed in ``RELATIVE_URLS`` may then be a path (``/sandbox/idp``): a path on this API."""

    RELATIVE_URLS: ClassVar[tuple[str, ...]] = ()

    public_base_url: str = Field(default="http://127.0.0.1:3000", alias="PUBLIC_BASE_URL")

    @model_validator(mode="after")
    def _paths_on_the_public_url(self) -> Self:
        if self.public_base_url:
            for name, value in self._relative_paths(self.public_base_url).items():
                object.__setattr__(self, name, value)
        return self

    def _relative_paths(self, origin: str) -> dict[str, str]:
        names = {name for klass in type(self).__mro__ for name in vars(klass).get("RELATIVE_URLS", ())}
        return {name: origin.rstrip("/") + value for name in names if (value := getattr(self, name)).startswith("/")}

    def served_at(self, origin: str) -> Self:
        """These settings for a request to ``origin`` (``https://host``) when no public URL is configured."""
        if self.public_base_url:
            return self
        return self.model_copy(update={"public_base_url": origin.rstrip("/"), **self._relative_paths(origin)})


class SignedInSettings(PublicUrlSettings):
    """What every route behind the sign-in guard needs: the keys that sign access tokens, and the
    origins allowed to use the session cookie for a write."""

    session_keys_secret_arn: str = Field(alias="SESSION_KEYS_SECRET_ARN", min_length=1)
    allowed_origins: str = Field(default="", alias="ALLOWED_ORIGINS")

    @property
    def origins(self) -> frozenset[str]:
        configured = {origin.strip().rstrip("/") for origin in self.allowed_origins.split(",") if origin.strip()}
        return frozenset(configured | {self.public_base_url.rstrip("/")})


class PayoutsQueueSettings(Settings):
    payouts_queue_url: str = Field(alias="PAYOUTS_QUEUE_URL", min_length=1)


class ProviderSettings(Settings):
    """The payment provider's API."""

    payment_provider_url: str = Field(alias="PAYMENT_PROVIDER_URL", min_length=1)
    provider_timeout_seconds: float = Field(alias="PROVIDER_TIMEOUT_SECONDS", default=3.0, gt=0)


class WebhookSecretSettings(Settings):
    """The secrets payment webhooks are signed with (HMAC secrets and JWT keys)."""

    webhook_secrets_arn: str = Field(alias="WEBHOOK_SECRETS_ARN", min_length=1)
    webhook_jwt_keys_arn: str = Field(alias="WEBHOOK_JWT_KEYS_ARN", min_length=1)


class BankProviderSettings(PublicUrlSettings):
    """Where the bank's OAuth and transactions API live and who we are to it."""

    RELATIVE_URLS = ("bank_base_url",)

    bank_base_url: str = Field(alias="BANK_BASE_URL", min_length=1)
    bank_client_id: str = Field(default="payrail", alias="BANK_CLIENT_ID", min_length=1)
    bank_timeout_seconds: float = Field(default=10.0, alias="BANK_TIMEOUT_SECONDS", gt=0)

    @property
    def redirect_uri(self) -> str:
        return self.public_base_url.rstrip("/") + "/bank/callback"


class TokensKeySettings(Settings):
    tokens_key_id: str = Field(alias="TOKENS_KEY_ID", min_length=1)


class BankSyncQueueSettings(Settings):
    bank_sync_queue_url: str = Field(alias="BANK_SYNC_QUEUE_URL", min_length=1)
    bank_sync_interval_seconds: int = Field(default=3600, alias="BANK_SYNC_INTERVAL_SECONDS", ge=60)


class BankSyncRequestSettings(BankSyncQueueSettings):
    """On-demand syncs: how many requests a user may make a minute (joined ones included)."""

    bank_sync_rate_limit_per_minute: int = Field(default=10, alias="BANK_SYNC_RATE_LIMIT_PER_MINUTE", ge=1)


class OidcSettings(PublicUrlSettings):
    RELATIVE_URLS = ("issuer",)

    issuer: str = Field(alias="OIDC_ISSUER", min_length=1)
    client_id: str = Field(alias="OIDC_CLIENT_ID", min_length=1)
    client_secret_arn: str = Field(alias="OIDC_CLIENT_SECRET_ARN", min_length=1)
    # How long the provider's JWKS is trusted before it is fetched again (a key the provider
    # removed is refused after this), and the least time between refetches for an unknown kid.
    jwks_lifespan_seconds: float = Field(default=300, alias="OIDC_JWKS_LIFESPAN_SECONDS", gt=0, le=86400)
    jwks_refetch_cooldown_seconds: float = Field(default=60, alias="OIDC_JWKS_REFETCH_COOLDOWN_SECONDS", ge=0, le=3600)

    @property
    def redirect_uri(self) -> str:
        return self.public_base_url.rstrip("/") + "/auth/callback"


class BreakerSettings(Settings):
    breaker_failure_rate_percent: int = Field(alias="BREAKER_FAILURE_RATE_PERCENT", default=50, ge=1, le=100)
    breaker_minimum_calls: int = Field(alias="BREAKER_MINIMUM_CALLS", default=10, ge=1)
    breaker_window_seconds: float = Field(alias="BREAKER_WINDOW_SECONDS", default=30, gt=0)
    breaker_cooldown_seconds: float = Field(alias="BREAKER_COOLDOWN_SECONDS", default=15, gt=0)


class BackoffSettings(Settings):
    backoff_base_seconds: float = Field(alias="BACKOFF_BASE_SECONDS", default=2, gt=0)
    backoff_cap_seconds: int = Field(alias="BACKOFF_CAP_SECONDS", default=300, ge=1)


class ReconcileSettings(PayoutsQueueSettings, ProviderSettings):
    grace_seconds: int = Field(default=120, alias="RECONCILE_GRACE_SECONDS", ge=0)
    stuck_seconds: int = Field(default=600, alias="RECONCILE_STUCK_SECONDS", ge=0)
    in_flight_seconds: int = Field(default=360, alias="RECONCILE_IN_FLIGHT_SECONDS", ge=0)


class BankSyncSettings(BankProviderSettings, TokensKeySettings):
    page_size: int = Field(default=100, alias="BANK_SYNC_PAGE_SIZE", ge=1, le=500)
    max_rate_limit_waits: int = Field(default=3, alias="BANK_SYNC_MAX_RATE_LIMIT_WAITS", ge=0)
    max_wait_seconds: int = Field(default=20, alias="BANK_SYNC_MAX_WAIT_SECONDS", ge=0)


# -------------------------------------------------------------------- one model per function
class HealthSettings(TableSettings):
    queue_urls: str = Field(default="", alias="QUEUE_URLS")
    # A round of dependency checks is reused this long by a function instance (GET /health is public).
    check_interval_seconds: float = Field(default=5, alias="HEALTH_CHECK_INTERVAL_SECONDS", ge=0, le=300)

    @property
    def queues(self) -> list[str]:
        return [url for url in self.queue_urls.split(",") if url]


class DocsSettings(PublicUrlSettings):
    # The sandbox is deployed on the dev stage only; elsewhere its routes are not documented.
    document_sandbox: bool = Field(default=False, alias="DOCUMENT_SANDBOX")


class AuthSettings(TableSettings, SignedInSettings, OidcSettings):
    auth_rate_limit_per_minute: int = Field(default=60, alias="AUTH_RATE_LIMIT_PER_MINUTE", ge=1)
    # How long a just-rotated refresh token, presented again, gets the same successor back
    # instead of revoking its session (two tabs, a retry after a lost answer); RFC 9700 4.14.2.
    refresh_reuse_grace_seconds: int = Field(default=10, alias="REFRESH_REUSE_GRACE_SECONDS", ge=0, le=120)


class PayoutsApiSettings(TableSettings, SignedInSettings, PayoutsQueueSettings):
    rate_limit_per_minute: int = Field(alias="PAYOUT_RATE_LIMIT_PER_MINUTE", default=60, ge=1)


class PayoutWorkerSettings(TableSettings, PayoutsQueueSettings, ProviderSettings, BreakerSettings, BackoffSettings):
    pass


class WebhookReceiveSettings(WebhookSecretSettings):
    payment_events_queue_url: str = Field(alias="PAYMENT_EVENTS_QUEUE_URL", min_length=1)


class PaymentEventsWorkerSettings(TableSettings):
    pass


class ScheduledJobsSettings(TableSettings, ReconcileSettings, BankSyncQueueSettings):
    pass


class BankApiSettings(TableSettings, SignedInSettings, BankProviderSettings, TokensKeySettings, BankSyncRequestSettings):
    pass


class BankSyncWorkerSettings(TableSettings, BankSyncSettings, BankSyncQueueSettings):
    pass


# -------------------------------------------------------------------- merchant webhooks
class WebhookSecretsKeySettings(Settings):
    """The KMS key the endpoints' signing secrets are encrypted under."""

    webhook_secrets_key_id: str = Field(alias="WEBHOOK_SECRETS_KEY_ID", min_length=1)


class WebhookDeliveryQueueSettings(Settings):
    webhook_deliveries_queue_url: str = Field(alias="WEBHOOK_DELIVERIES_QUEUE_URL", min_length=1)
    # How long events and delivery tasks are kept (redeliver finds an event for this long).
    webhook_event_retention_days: int = Field(default=30, alias="WEBHOOK_EVENT_RETENTION_DAYS", ge=1, le=365)


class WebhookEgressSettings(Settings):
    # The dev stage and the local stack may deliver to http and loopback URLs (tests run receivers).
    webhook_allow_private_urls: bool = Field(default=False, alias="WEBHOOK_ALLOW_PRIVATE_URLS")


class WebhookEndpointsApiSettings(
    TableSettings, SignedInSettings, WebhookSecretsKeySettings, WebhookDeliveryQueueSettings, WebhookEgressSettings
):
    pass


class WebhookFanOutSettings(TableSettings, WebhookDeliveryQueueSettings):
    pass


class WebhookDeliverySettings(TableSettings, WebhookDeliveryQueueSettings, WebhookEgressSettings):
    # Seconds before each attempt: the first at once, then after each failure (comma-separated).
    webhook_retry_schedule: str = Field(default="0,5,300,1800,7200,18000,36000,36000", alias="WEBHOOK_RETRY_SCHEDULE")
    # An endpoint whose every attempt has failed for this long is disabled.
    webhook_disable_after_seconds: int = Field(default=5 * 86400, alias="WEBHOOK_DISABLE_AFTER_SECONDS", ge=1)
    webhook_timeout_seconds: float = Field(default=15.0, alias="WEBHOOK_TIMEOUT_SECONDS", gt=0, le=15)

    @property
    def schedule(self) -> list[int]:
        return [int(part) for part in self.webhook_retry_schedule.split(",") if part.strip()]

    @model_validator(mode="after")
    def _schedule_is_valid(self) -> Self:
        parts = [part.strip() for part in self.webhook_retry_schedule.split(",")]
        if not parts or not all(part.isdigit() for part in parts):
            raise ValueError("WEBHOOK_RETRY_SCHEDULE is a comma-separated list of whole seconds, e.g. 0,5,300")
        return self
