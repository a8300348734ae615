"""Settings: a shared base with one environment-variable prefix per service.

Every service subclasses :class:`ServiceSettings` with ``env_prefix`` set to its
name (``AUTH_``, ``CATALOG_``...). Settings shared by the whole platform (token
issuer, JWKS location, CORS) live in :class:`PlatformSettings` under ``STOREFRONT_``;
secrets are per service (each its own service-token key, ``<PREFIX>_SERVICE_TOKEN_KEY``,
and its callers' public keys, ``<PREFIX>_SERVICE_TOKEN_CALLERS``). Both read a ``.env``
file when present. Placeholder secrets are refused at start-up (outside tests for the
service-token key, outside development for the others).
"""

import base64
import hashlib
import json
import re
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jwt_core_lib import SigningKey, public_key_from_x
from storefront_kit.redis_urls import cluster_nodes, is_cluster_url

if TYPE_CHECKING:
    from storefront_kit.encryption import BlindIndex, FieldCipher

__all__ = [
    "PLACEHOLDER_SECRETS",
    "Environment",
    "PlatformSettings",
    "ServiceSettings",
    "is_placeholder",
]

Environment = Literal["development", "test", "production"]

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "placeholder"})

_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
# A Sentry DSN: http(s)://<public key>@<host>[:port][/path]/<numeric project id>.
_SENTRY_DSN = re.compile(r"^https?://[^@/\s:]+(?::[^@/\s]*)?@[^@/\s]+(?:/[^\s]*)?/\d+/?$")


def _sentry_dsn(value: str) -> str:
    value = value.strip()
    if value and not _SENTRY_DSN.match(value):
        raise ValueError("not a Sentry DSN: http(s)://<key>@<host>/<project id>")
    return value


_OTLP_ENDPOINT = re.compile(r"^https?://[^/\s?#]+(?:/[^\s?#]*)?$")


def _otlp_endpoint(value: str) -> str:
    value = value.strip()
    if value and not _OTLP_ENDPOINT.match(value):
        raise ValueError("not an OTLP/HTTP endpoint: http(s)://<host>[:port][/path]")
    return value.rstrip("/")


#: Keys one caller may have listed at once (current, next, and a spare during a rotation).
MAX_KEYS_PER_CALLER = 4


def is_placeholder(value: SecretStr | None) -> bool:
    """True when a secret is unset or one of :data:`PLACEHOLDER_SECRETS`."""
    return value is None or value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS


class _TelemetryForms(BaseSettings):
    """The form checks of the telemetry addresses that both settings levels carry."""

    @field_validator("sentry_dsn", check_fields=False)
    @classmethod
    def _sentry_dsn_form(cls, value: str) -> str:
        return _sentry_dsn(value)

    @field_validator("otlp_endpoint", check_fields=False)
    @classmethod
    def _otlp_endpoint_form(cls, value: str) -> str:
        return _otlp_endpoint(value)


class PlatformSettings(_TelemetryForms):
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
    sentry_dsn: str = Field(
        default="",
        description=(
            "Where every service reports unhandled errors (a Sentry DSN, "
            "http(s)://<key>@<host>/<project>); empty: no error reporting. A service's "
            "own <PREFIX>_SENTRY_DSN takes precedence."
        ),
    )
    sentry_release: str = Field(
        default="",
        description=(
            "The release error reports are tagged with (e.g. a git commit); "
            "empty: storefront-<service>@<version>."
        ),
    )

    otlp_endpoint: str = Field(
        default="",
        description=(
            "Where every service exports its traces: the OTLP/HTTP base URL of a "
            "collector (spans are posted to <endpoint>/v1/traces), e.g. "
            "http://otel-collector:4318; empty: no tracing (nothing installed). A "
            "service's own <PREFIX>_OTLP_ENDPOINT takes precedence."
        ),
    )
    trace_sample_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description=(
            "Share of new traces kept (0 to 1), decided where a trace starts; a request "
            "or event that arrives with a traceparent follows its sampled flag."
        ),
    )

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> "PlatformSettings":
        if self.cors_allow_credentials and "*" in self.cors_allow_origins:
            raise ValueError("CORS: a wildcard origin cannot be combined with credentials")
        return self


class ServiceSettings(_TelemetryForms):
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
    sentry_dsn: str = Field(
        default="",
        description=(
            "Where this service reports unhandled errors (a Sentry DSN); empty: "
            "STOREFRONT_SENTRY_DSN, and with that empty too, no error reporting."
        ),
    )

    otlp_endpoint: str = Field(
        default="",
        description=(
            "Where this service exports its traces (an OTLP/HTTP base URL); empty: "
            "STOREFRONT_OTLP_ENDPOINT, and with that empty too, no tracing."
        ),
    )

    service_token_key: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "This service's own Ed25519 private key (PEM, PKCS#8) for the tokens it sends "
            "to other services; no other service holds it. Required outside tests."
        ),
    )
    service_token_callers: dict[str, list[str]] = Field(
        default_factory=dict,
        description=(
            "JSON object: calling service name -> public keys it may sign with (each the "
            "base64url raw 32-byte Ed25519 key, the JWK 'x'; two during a rotation). "
            "{} for a service nobody calls."
        ),
    )

    #: The service's name as used in paths, logs, metrics and service-token audiences.
    service_name: ClassVar[str] = "service"

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable a field is read from (``INVENTORY_SERVICE_TOKEN_KEY``)."""
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()

    @field_validator("service_token_key")
    @classmethod
    def _service_key_is_ed25519(cls, value: SecretStr) -> SecretStr:
        if not is_placeholder(value):
            try:
                SigningKey.from_pem(value.get_secret_value())
            except (ValueError, TypeError):
                raise ValueError("not an unencrypted Ed25519 private key in PEM (PKCS#8)") from None
        return value

    @model_validator(mode="after")
    def _own_key_is_nobody_elses(self) -> "ServiceSettings":
        # A shared key would let this service sign as that caller (and the caller as it).
        if not is_placeholder(self.service_token_key):
            own = SigningKey.from_pem(self.service_token_key.get_secret_value()).x
            for caller, keys in self.service_token_callers.items():
                if own in keys:
                    raise ValueError(
                        f"{self.env_name('service_token_key')} is also listed for {caller!r}: "
                        "every service needs a key of its own"
                    )
        return self

    @field_validator("service_token_callers")
    @classmethod
    def _callers_are_public_keys(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for caller, keys in value.items():
            if not _SERVICE_NAME.match(caller):
                raise ValueError(f"not a service name: {caller[:40]!r}")
            if not keys or len(keys) > MAX_KEYS_PER_CALLER:
                raise ValueError(f"{caller}: list 1 to {MAX_KEYS_PER_CALLER} public keys")
            for key in keys:
                try:
                    public_key_from_x(key)
                except ValueError as exc:
                    raise ValueError(f"{caller}: {exc}") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(
            ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
        ):
            raise ValueError(
                "redis_url must be a redis:// or rediss:// URL (one server) or a"
                " redis+cluster://host:port[,host:port...]/ URL (a Redis Cluster)"
            )
        if is_cluster_url(value):
            cluster_nodes(value)  # the node list must parse
        return value


class DatabaseSettingsMixin(BaseSettings):
    """Connection pool settings of a database-owning service
    (:func:`storefront_kit.db.engine_from_settings` builds its engine from them)."""

    #: Set by the service's settings class (``ServiceSettings``); names its connections.
    service_name: ClassVar[str] = "service"

    database_url: str = "postgresql+asyncpg://storefront@127.0.0.1:5432/storefront"
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_pool_timeout_s: float = 3.0
    db_connect_timeout_s: float = 2.0
    db_statement_timeout_ms: int = 10_000

    @field_validator("database_url")
    @classmethod
    def _asyncpg_driver(cls, value: str) -> str:
        return asyncpg_url(value)

    def database_urls(self) -> tuple[str, ...]:
        """Every database the service owns: ``migrate`` and ``rotate-keys`` visit each.

        One, ``database_url``, unless the service splits its data over several
        (orders' shards, ``ORDERS_DATABASE_SHARDS``).
        """
        return (self.database_url,)


def asyncpg_url(value: str) -> str:
    """``value``, a PostgreSQL URL, with the asyncpg driver named (``postgres://`` too)."""
    if value.startswith(("postgres://", "postgresql://")):
        value = "postgresql+asyncpg://" + value.split("://", 1)[1]
    if not value.startswith("postgresql+asyncpg://"):
        raise ValueError("a database URL must be a PostgreSQL URL")
    return value


class OutboxSettingsMixin(BaseSettings):
    """How a service's outbox relay publishes (``OutboxRelay.from_settings``)."""

    #: Outbox rows published per relay round.
    outbox_batch_size: int = Field(default=200, ge=1, le=10_000)
    #: Seconds the relay waits between polls when no commit woke it.
    outbox_poll_interval_s: float = Field(default=0.5, gt=0)
    #: Seconds the relay waits after a commit woke it, so that the commits landing
    #: meanwhile leave in the same round (fewer relay transactions per event).
    outbox_notify_linger_s: float = Field(default=0.01, ge=0, le=1)
    #: Approximate maximum length of the service's ``<service>.events`` stream.
    outbox_stream_maxlen: int = Field(default=1_000_000, ge=1000)
    #: Seconds a published outbox row is kept (audit, replay by hand) before it is
    #: deleted; 0 keeps them for good. Unpublished rows are never deleted.
    outbox_retention_s: int = Field(default=7 * 24 * 3600, ge=0)


class FieldEncryptionSettingsMixin(BaseSettings):
    """Keys of a service that stores personal fields encrypted (:mod:`storefront_kit.encryption`).

    ``encryption_keys`` is a JSON object of key id -> base64 of 32 random bytes (the
    key-encryption keys), ``encryption_key_id`` the one that seals new values, and
    ``blind_index_key`` the HMAC key of the lookup digests. Left at a placeholder they
    are refused in production; in development and tests a fixed, publicly known key
    derived from the service name stands in (nothing it protects is secret).
    """

    encryption_keys: SecretStr = Field(
        default=SecretStr("changeme"),
        description=(
            'JSON object: key id -> base64 of 32 random bytes, e.g. {"k1": "<base64>"}; '
            "keys that wrap the data keys of personal fields (two during a rotation)."
        ),
    )
    encryption_key_id: str = Field(
        default="k1",
        pattern=r"^[A-Za-z0-9._-]{1,32}$",
        description="The id (in the encryption keys) of the key new values are sealed with.",
    )
    blind_index_key: SecretStr = Field(
        default=SecretStr("changeme"),
        description="Base64 of 32 random bytes: the HMAC key of the phone/chat lookup digests.",
    )

    def _encryption_env(self, field: str) -> str:
        prefix = str(self.model_config.get("env_prefix", ""))
        return f"{prefix}{field}".upper()

    def field_key_ring(self) -> dict[str, str]:
        """``{key id: base64 key}``: the configured ring, or the development stand-in."""
        if is_placeholder(self.encryption_keys):
            return {self.encryption_key_id: _development_key(self, "encryption")}
        ring = json.loads(self.encryption_keys.get_secret_value())
        assert isinstance(ring, dict)
        return {str(key): str(value) for key, value in ring.items()}

    def blind_index_key_text(self) -> str:
        """The base64 blind-index key, or the development stand-in."""
        if is_placeholder(self.blind_index_key):
            return _development_key(self, "blind-index")
        return self.blind_index_key.get_secret_value()

    def field_crypto(self) -> "tuple[FieldCipher, BlindIndex]":
        """The cipher and blind index these settings describe."""
        from storefront_kit.encryption import BlindIndex, FieldCipher, KeyRing, decode_key

        ring = KeyRing.from_text(self.field_key_ring(), active=self.encryption_key_id)
        return FieldCipher(ring), BlindIndex(decode_key(self.blind_index_key_text()))

    @model_validator(mode="after")
    def _encryption_keys_usable(self) -> "FieldEncryptionSettingsMixin":
        from storefront_kit.encryption import KeyRing, decode_key

        platform = getattr(self, "platform", None)
        if getattr(platform, "environment", "development") == "production":
            for field in ("encryption_keys", "blind_index_key"):
                if is_placeholder(getattr(self, field)):
                    raise ValueError(
                        f"{self._encryption_env(field)} must be set to a real key in production"
                    )
        if not is_placeholder(self.encryption_keys):
            try:
                ring = json.loads(self.encryption_keys.get_secret_value())
            except ValueError:
                raise ValueError(
                    f"{self._encryption_env('encryption_keys')}: not a JSON object"
                ) from None
            if not isinstance(ring, dict) or not all(isinstance(v, str) for v in ring.values()):
                raise ValueError(
                    f"{self._encryption_env('encryption_keys')}: a JSON object of id -> base64 key"
                )
            KeyRing.from_text(ring, active=self.encryption_key_id)  # never echoes a key
        if not is_placeholder(self.blind_index_key):
            try:
                decode_key(self.blind_index_key.get_secret_value())
            except ValueError as exc:
                raise ValueError(f"{self._encryption_env('blind_index_key')}: {exc}") from None
        return self


def _development_key(settings: BaseSettings, purpose: str) -> str:
    """A fixed key anyone can derive: for development and tests only (refused in production)."""
    seed = f"storefront development key/{settings.model_config.get('env_prefix')}/{purpose}"
    return base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode()


__all__ += [
    "DatabaseSettingsMixin",
    "FieldEncryptionSettingsMixin",
    "OutboxSettingsMixin",
    "asyncpg_url",
]
