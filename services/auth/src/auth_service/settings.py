"""Settings of the auth service (environment prefix ``AUTH_``)."""

from typing import ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from jwt_core_lib import SigningKey
from storefront_kit.rate_limits import check_rate
from storefront_kit.settings import (
    PLACEHOLDER_SECRETS,
    DatabaseSettingsMixin,
    FieldEncryptionSettingsMixin,
    ServiceSettings,
)

__all__ = ["AuthSettings", "get_settings", "is_placeholder"]


def is_placeholder(value: SecretStr) -> bool:
    """True for an unset or placeholder secret (``changeme``...)."""
    return value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS


def _check_pem(value: SecretStr) -> None:
    try:
        SigningKey.from_pem(value.get_secret_value())
    except (ValueError, TypeError):
        # Never echo the value: it is a private key.
        raise ValueError("not an unencrypted Ed25519 private key in PEM (PKCS#8)") from None


class AuthSettings(ServiceSettings, DatabaseSettingsMixin, FieldEncryptionSettingsMixin):
    """Everything the auth service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="AUTH_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "auth"
    port: int = 8101
    database_url: str = "postgresql+asyncpg://storefront@127.0.0.1:5432/auth"

    #: Ed25519 private key (PEM) auth signs user tokens with: `openssl genpkey -algorithm ed25519`.
    jwt_signing_key: SecretStr = SecretStr("changeme")
    #: Retired signing keys (JSON list of PEMs) still published in the JWKS during a rotation.
    jwt_previous_keys: list[SecretStr] = Field(default_factory=list, max_length=5)
    #: Seconds an access token is valid (15 minutes).
    access_token_ttl_s: int = Field(default=900, ge=60, le=3600)
    #: Seconds a refresh token (and so a login) lasts unless it is rotated or revoked.
    refresh_token_ttl_s: int = Field(default=30 * 24 * 3600, ge=300, le=90 * 24 * 3600)
    #: Seconds clients and services may cache /.well-known/jwks.json.
    jwks_max_age_s: int = Field(default=300, ge=0, le=86400)

    #: Secret key of the HMAC that OTP codes are stored under (a Redis dump reveals no code).
    otp_pepper: SecretStr = SecretStr("changeme")
    #: Seconds an OTP code (and a Telegram link token) stays valid; at most 5 minutes.
    otp_ttl_s: int = Field(default=300, ge=30, le=300)
    #: Wrong codes after which the pending code is dead.
    otp_max_attempts: int = Field(default=5, ge=1, le=5)
    #: Seconds before another code may be requested for the same phone.
    otp_resend_cooldown_s: int = Field(default=30, ge=1, le=300)
    #: Codes one phone may request (limits syntax, moving window, shared through Redis).
    otp_phone_rate_limit: str = "5/10minutes"
    #: Codes one client IP may request (limits syntax, moving window, shared through Redis).
    otp_ip_rate_limit: str = "30/10minutes"
    #: Code checks (`otp/verify`) for one phone, whatever code is pending (moving window).
    otp_verify_phone_rate_limit: str = "30/10minutes"
    #: Code checks (`otp/verify`) from one client IP (moving window).
    otp_verify_ip_rate_limit: str = "120/10minutes"
    #: Token refreshes from one client IP (moving window).
    refresh_ip_rate_limit: str = "300/10minutes"
    #: With Redis unreachable, let requests through unchecked (the gateway's per-address
    #: zones still hold; OTP codes live in Redis, so send and verify fail with 503 anyway)
    #: instead of answering 503 `rate_limit_unavailable`.
    rate_limit_fail_open: bool = True
    #: Also require a number valid in its numbering plan (fictional +1 555 numbers then fail).
    phone_strict_validation: bool = False

    #: The Telegram bot's @username, used in the deep link `https://t.me/<bot>?start=<token>`.
    telegram_bot_username: str = Field(
        default="storefront_sandbox_bot", pattern=r"^[A-Za-z0-9_]{5,32}$"
    )
    #: Refused attempts (a foreign or mismatching contact, a typed number, another chat's
    #: Start) after which a Telegram link token is burned.
    telegram_link_max_attempts: int = Field(default=3, ge=1, le=10)
    #: Base URL of the notifications service (OTP delivery).
    notifications_url: str = "http://127.0.0.1:8105"
    #: Seconds one OTP delivery call to notifications may take.
    notifications_timeout_s: float = Field(default=2.0, gt=0, le=30)
    #: Calls made to hand one code to notifications before giving up (transport errors, 5xx).
    notifications_max_attempts: int = Field(default=3, ge=1, le=10)

    #: Base URL of the orders service (the orders part of a user's data export).
    orders_url: str = "http://127.0.0.1:8104"
    #: Base URL of the ws-gateway service (the presence part of a user's data export).
    ws_gateway_url: str = "http://127.0.0.1:8106"
    #: Seconds each service may take to answer its part of a data export (no retry: a
    #: service that is down makes the export a fast 503 `export_unavailable`).
    export_timeout_s: float = Field(default=3.0, gt=0, le=30)

    #: Relay the outbox (`user.erased` on `users.events`) from this process.
    outbox_relay_enabled: bool = True
    #: Seconds between outbox polls when no commit woke the relay.
    outbox_poll_interval_s: float = Field(default=0.5, gt=0)
    #: Seconds a published outbox row is kept before it is purged (0 keeps them for good).
    #: A `user.erased` row names the erased user's id: keep this short.
    outbox_retention_s: int = Field(default=3600, ge=0)

    #: Store the other services' audit entries (`audit.events`) from this process.
    audit_consumer_enabled: bool = True
    #: This replica's consumer name in the `auth-audit` group; unset means host and pid.
    audit_consumer_name: str | None = Field(default=None, max_length=200)

    #: Admin user list (and audit log) page size when none is asked for.
    page_size_default: int = Field(default=20, ge=1)
    #: Largest admin user list (and audit log) page size (larger is a 422).
    page_size_max: int = Field(default=100, ge=1, le=1000)

    @field_validator(
        "otp_phone_rate_limit",
        "otp_ip_rate_limit",
        "otp_verify_phone_rate_limit",
        "otp_verify_ip_rate_limit",
        "refresh_ip_rate_limit",
    )
    @classmethod
    def _limits_syntax(cls, value: str) -> str:
        return check_rate(value)

    @field_validator("jwt_signing_key")
    @classmethod
    def _signing_key(cls, value: SecretStr) -> SecretStr:
        if not is_placeholder(value):
            _check_pem(value)
        return value

    @field_validator("jwt_previous_keys")
    @classmethod
    def _previous_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for pem in value:
            _check_pem(pem)
        return value

    @field_validator("notifications_url", "orders_url", "ws_gateway_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("a service URL must be an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _secrets(self) -> "AuthSettings":
        if self.platform.environment == "production":
            for name, value in (
                ("AUTH_JWT_SIGNING_KEY", self.jwt_signing_key),
                ("AUTH_OTP_PEPPER", self.otp_pepper),
            ):
                if is_placeholder(value):
                    raise ValueError(f"{name} must be set to a real secret outside development")
        if self.page_size_default > self.page_size_max:
            raise ValueError("page_size_default exceeds page_size_max")
        return self


def get_settings() -> AuthSettings:
    """Settings from the environment (and ``.env``)."""
    return AuthSettings()
