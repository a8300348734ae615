"""Settings: a shared base with one environment-variable prefix per service.

Every service subclasses :class:`ServiceSettings` with ``env_prefix`` set to its
name (``AUTH_``, ``CATALOG_``...). Settings shared by the whole platform (token
issuer, JWKS location, CORS, the service-token key) live in :class:`PlatformSettings`
under ``STOREFRONT_``. Both read a ``.env`` file when present. Outside development
and tests, placeholder secrets are refused at start-up.
"""

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["PLACEHOLDER_SECRETS", "Environment", "PlatformSettings", "ServiceSettings"]

Environment = Literal["development", "test", "production"]

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "placeholder"})


class PlatformSettings(BaseSettings):
    """Settings every service reads the same way (prefix ``STOREFRONT_``)."""

    model_config = SettingsConfigDict(
        env_prefix="STOREFRONT_", env_file=".env", extra="ignore", frozen=True
    )

    environment: Environment = "development"
    log_level: str = "INFO"
    log_json: bool = True
    docs_enabled: bool = True
    jwt_issuer: str = "storefront-auth"
    jwt_audience: str = "storefront"
    jwks_url: str = "http://127.0.0.1:8101/.well-known/jwks.json"
    service_token_issuer: str = "storefront-services"  # noqa: S105 (a name, not a secret)
    service_token_key: SecretStr = Field(
        default=SecretStr("changeme"),
        description="Ed25519 private key (PEM) services sign their service-to-service tokens with.",
    )
    cors_allow_origins: list[str] = ["http://localhost:8080", "https://localhost:8443"]
    cors_allow_methods: list[str] = ["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"]
    cors_allow_headers: list[str] = [
        "Authorization",
        "Content-Type",
        "Idempotency-Key",
        "If-Match",
        "X-Request-ID",
    ]
    cors_allow_credentials: bool = True
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Addresses whose X-Forwarded-For/X-Real-IP are trusted (the gateway's).",
    )
    gc_freeze: bool = Field(
        default=True,
        description=(
            "After start-up, move every object alive then out of the cyclic garbage "
            "collector's reach (gc.freeze): a full collection otherwise rescans those "
            "~150,000 objects and stalls the event loop for ~100 ms."
        ),
    )

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> "PlatformSettings":
        if self.cors_allow_credentials and "*" in self.cors_allow_origins:
            raise ValueError("CORS: a wildcard origin cannot be combined with credentials")
        return self

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> "PlatformSettings":
        if self.environment == "production":
            _refuse_placeholder("STOREFRONT_SERVICE_TOKEN_KEY", self.service_token_key)
        return self


def _refuse_placeholder(name: str, value: SecretStr | None) -> None:
    if value is None or value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
        raise ValueError(f"{name} must be set to a real secret outside development")


class ServiceSettings(BaseSettings):
    """Base of each service's settings; subclasses set ``env_prefix`` to the service name."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    platform: PlatformSettings = Field(default_factory=PlatformSettings)
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes.")
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_socket_timeout_s: float = 2.0
    http_timeout_s: float = 5.0
    max_concurrent_requests: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="HTTP requests one worker works on at once; the rest wait their turn.",
    )
    request_queue_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a request may wait for its turn before it is refused (503).",
    )

    #: The service's name as used in paths, logs, metrics and service-token audiences.
    service_name: ClassVar[str] = "service"

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must be a redis:// or rediss:// URL")
        return value


class DatabaseSettingsMixin(BaseSettings):
    """Connection pool settings of a database-owning service."""

    database_url: str = "postgresql+asyncpg://storefront@127.0.0.1:5432/storefront"
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_pool_timeout_s: float = 3.0
    db_connect_timeout_s: float = 2.0
    db_statement_timeout_ms: int = 10_000

    @field_validator("database_url")
    @classmethod
    def _asyncpg_driver(cls, value: str) -> str:
        if value.startswith(("postgres://", "postgresql://")):
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        if not value.startswith("postgresql+asyncpg://"):
            raise ValueError("database_url must be a PostgreSQL URL")
        return value


__all__ += ["DatabaseSettingsMixin"]
