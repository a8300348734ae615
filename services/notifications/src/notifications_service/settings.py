"""Settings of the notifications service (environment prefix ``NOTIFICATIONS_``)."""

import re
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from storefront_kit.settings import (
    PLACEHOLDER_SECRETS,
    DatabaseSettingsMixin,
    FieldEncryptionSettingsMixin,
    ServiceSettings,
)

__all__ = ["DEV_BOT_TOKEN", "NotificationsSettings", "get_settings"]

#: A well-formed token the Telegram stand-in accepts; refused in production.
DEV_BOT_TOKEN = "100000001:storefront-sandbox-development-token"  # noqa: S105 (not a secret)

_BOT_TOKEN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{1,100}$")
# Telegram's rule for setWebhook's secret_token.
_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def _is_placeholder(value: SecretStr) -> bool:
    return value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS


class NotificationsSettings(ServiceSettings, DatabaseSettingsMixin, FieldEncryptionSettingsMixin):
    """Everything the notifications service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "notifications"
    port: int = 8105
    database_url: str = "postgresql+asyncpg://storefront@127.0.0.1:5432/notifications"

    #: Bot API base URL without /bot (the local runner points it at the Telegram stand-in).
    telegram_api_url: str = "http://127.0.0.1:8201"
    #: The bot's token from @BotFather; the default only works against the stand-in.
    telegram_bot_token: SecretStr = SecretStr(DEV_BOT_TOKEN)
    #: Public HTTPS URL Telegram posts updates to; unset means no setWebhook at start-up.
    telegram_webhook_url: str | None = None
    #: X-Telegram-Bot-Api-Secret-Token the webhook requires: `openssl rand -hex 32`.
    telegram_webhook_secret: SecretStr = SecretStr("changeme")
    #: Seconds one Bot API call may take (connect, read and write each).
    telegram_timeout_s: float = Field(default=5.0, gt=0, le=60)
    #: Concurrent connections to the Bot API.
    telegram_pool_size: int = Field(default=16, ge=1, le=256)
    #: First wait before setWebhook is tried again after a failure (doubles, capped at 60 s).
    telegram_webhook_retry_s: float = Field(default=2.0, gt=0, le=60)
    #: Sends of one message tried before giving up (429 waits and transient errors).
    telegram_send_attempts: int = Field(default=4, ge=1, le=20)
    #: First back-off after a transient Telegram error (doubles per attempt, with jitter).
    telegram_backoff_s: float = Field(default=0.5, ge=0, le=30)
    #: Longest back-off between two sends of one message.
    telegram_backoff_max_s: float = Field(default=10.0, ge=0, le=300)
    #: Longest 429 retry_after honoured in place; a longer one fails the attempt.
    telegram_retry_after_max_s: float = Field(default=20.0, ge=1, le=3600)
    #: Seconds a Telegram update id is remembered to drop redeliveries.
    telegram_update_dedupe_s: int = Field(default=86400, ge=60)

    #: Base URL of the auth service (Start presses, user -> chat lookups).
    auth_url: str = "http://127.0.0.1:8101"
    #: Seconds one call to auth may take.
    auth_timeout_s: float = Field(default=2.0, gt=0, le=30)
    #: Seconds a user's chat (sealed) stays cached in Redis; auth's forget drops it sooner.
    chat_cache_ttl_s: int = Field(default=600, ge=1, le=86400)

    #: Minutes an OTP code is valid, as told to the user (match AUTH_OTP_TTL_S).
    otp_valid_minutes: int = Field(default=5, ge=1, le=60)
    #: Seconds after which an undelivered OTP is dropped (the code has expired by then).
    otp_deadline_s: float = Field(default=300.0, gt=0, le=3600)

    #: Run the orders.events consumer in this process.
    consumer_enabled: bool = True
    #: The stream of order and payment events.
    consumer_stream: str = "orders.events"
    #: Consumer group name (every replica joins it; each event goes to one of them).
    consumer_group: str = "notifications"
    #: This replica's consumer name; unset means host name and process id.
    consumer_name: str | None = None
    #: Entries read per batch.
    consumer_batch_size: int = Field(default=50, ge=1, le=1000)
    #: Milliseconds one read blocks waiting for new entries.
    consumer_block_ms: int = Field(default=1000, ge=10, le=60_000)
    #: Milliseconds to wait after a read that found entries before reading again, so a
    #: checkout's burst of events costs one read and one acknowledgement (0: at once).
    consumer_linger_ms: int = Field(default=100, ge=0, le=5000)
    #: Failed handlings of one entry before it is dead-lettered.
    consumer_max_attempts: int = Field(default=5, ge=1, le=100)
    #: Seconds between retries of failed entries.
    consumer_retry_delay_s: float = Field(default=1.0, ge=0, le=300)
    #: Milliseconds an entry may stay unacknowledged by a dead replica before another claims it.
    consumer_claim_idle_ms: int = Field(default=120_000, ge=1000)
    #: Milliseconds a consumer (a dead replica's) may go without reading before it is
    #: removed from the group, once nothing is pending for it (its entries were claimed).
    consumer_dead_idle_ms: int = Field(default=600_000, ge=1000)
    #: Seconds a claimed, unsent notification stays reserved for its sender (longer than a
    #: send with all its retries; shorter than the consumer's claim idle time).
    claim_lease_s: float = Field(default=90.0, gt=0)

    #: Dead letters listed per page when none is asked for.
    page_size_default: int = Field(default=50, ge=1)
    #: Largest dead-letter page (larger is a 422).
    page_size_max: int = Field(default=500, ge=1, le=10_000)

    @field_validator("telegram_api_url", "auth_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("telegram_webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("telegram_webhook_url must be an http(s) URL")
        return value

    @field_validator("telegram_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr) -> SecretStr:
        if _is_placeholder(value):
            # `changeme` from .env.example: the stand-in's token (refused in production).
            return SecretStr(DEV_BOT_TOKEN)
        if not _BOT_TOKEN.match(value.get_secret_value()):
            # Never echo the value: it is a credential.
            raise ValueError("not a Telegram bot token (<digits>:<letters, digits, _ ->)")
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr) -> SecretStr:
        if not _WEBHOOK_SECRET.match(value.get_secret_value()):
            raise ValueError("the webhook secret allows only A-Z a-z 0-9 _ - (1-256 characters)")
        return value

    @model_validator(mode="after")
    def _production(self) -> "NotificationsSettings":
        if self.platform.environment == "production":
            if self.telegram_bot_token.get_secret_value() == DEV_BOT_TOKEN:
                raise ValueError("NOTIFICATIONS_TELEGRAM_BOT_TOKEN must be a real bot token")
            if _is_placeholder(self.telegram_webhook_secret):
                raise ValueError(
                    "NOTIFICATIONS_TELEGRAM_WEBHOOK_SECRET must be set to a real secret"
                    " outside development"
                )
        if self.claim_lease_s * 1000 >= self.consumer_claim_idle_ms:
            # Else an entry taken over from a dead replica would find its claim still held.
            raise ValueError("claim_lease_s must be shorter than consumer_claim_idle_ms")
        if self.consumer_dead_idle_ms <= self.consumer_block_ms:
            # A live replica is idle for up to one block between two reads.
            raise ValueError("consumer_dead_idle_ms must exceed consumer_block_ms")
        if self.page_size_default > self.page_size_max:
            raise ValueError("page_size_default exceeds page_size_max")
        return self


def get_settings() -> NotificationsSettings:
    """Settings from the environment (and ``.env``)."""
    return NotificationsSettings()
