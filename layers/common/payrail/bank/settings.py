"""The bank functions' settings, composed from small pieces and read once with ``payrail.settings.load``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from payrail.settings import PublicUrlSettings, TableSettings


class BankProviderSettings(PublicUrlSettings):
    """Where the bank's OAuth and transactions API live and who we are to it."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)
    bank_base_url: str = Field(alias="BANK_BASE_URL", min_length=1)
    bank_client_id: str = Field(default="payrail", alias="BANK_CLIENT_ID", min_length=1)
    bank_timeout_seconds: float = Field(default=10.0, alias="BANK_TIMEOUT_SECONDS", gt=0)

    @property
    def redirect_uri(self) -> str:
        return self.public_base_url.rstrip("/") + "/bank/callback"


class TokensKeySettings(TableSettings):
    tokens_key_id: str = Field(alias="TOKENS_KEY_ID", min_length=1)


class BankQueueSettings(TableSettings):
    bank_sync_queue_url: str = Field(alias="BANK_SYNC_QUEUE_URL", min_length=1)
    bank_sync_interval_seconds: int = Field(default=3600, alias="BANK_SYNC_INTERVAL_SECONDS", ge=60)


class BankSyncSettings(BankProviderSettings):
    table_name: str = Field(alias="TABLE_NAME", min_length=1)
    tokens_key_id: str = Field(alias="TOKENS_KEY_ID", min_length=1)
    page_size: int = Field(default=100, alias="BANK_SYNC_PAGE_SIZE", ge=1, le=500)
    max_rate_limit_waits: int = Field(default=3, alias="BANK_SYNC_MAX_RATE_LIMIT_WAITS", ge=0)
    max_wait_seconds: int = Field(default=20, alias="BANK_SYNC_MAX_WAIT_SECONDS", ge=0)
