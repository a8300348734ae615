"""Settings of the orders service (environment prefix ``ORDERS_``)."""

from typing import ClassVar

from pydantic import Field, ImportString, model_validator
from pydantic_settings import SettingsConfigDict

from orders_service.domain.fraud import FraudRule, parse_rules
from orders_service.domain.sharding import ShardRouter
from storefront_kit.settings import (
    DatabaseSettingsMixin,
    FieldEncryptionSettingsMixin,
    OutboxSettingsMixin,
    ServiceSettings,
    asyncpg_url,
)

__all__ = ["OrdersSettings", "fraud_rules", "get_settings"]


class OrdersSettings(
    ServiceSettings, DatabaseSettingsMixin, OutboxSettingsMixin, FieldEncryptionSettingsMixin
):
    """Everything the orders service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="ORDERS_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "orders"
    port: int = 8104
    database_url: str = "postgresql+asyncpg://storefront@127.0.0.1:5432/orders"
    #: Every orders database, comma-separated, when orders are split over several by
    #: user (docs/orders.md "Shards"); empty: the one at ``database_url``. Each gets a
    #: pool of ``db_pool_size``, a saga runner and an outbox relay.
    database_shards: str = ""
    #: The function from a user id to the URL of the database holding their orders,
    #: ``module.function`` (orders_service.domain.sharding).
    shard_router: ImportString[ShardRouter] = Field(
        default="orders_service.domain.sharding.by_user_hash", validate_default=True
    )

    # --- who we call (the local runner sets these names) -------------------------------
    #: Base URL of the inventory service (internal API, service tokens).
    inventory_url: str = "http://127.0.0.1:8103"
    #: Base URL of the payment provider.
    payments_api_url: str = "http://127.0.0.1:8202"
    #: Base URL of the shipping provider.
    shipping_api_url: str = "http://127.0.0.1:8203"
    #: Per-request timeout of inventory calls.
    inventory_timeout_s: float = Field(default=3.0, gt=0)
    #: Per-request timeout of payment provider calls.
    payments_timeout_s: float = Field(default=5.0, gt=0)
    #: Per-request timeout of shipping provider calls.
    shipping_timeout_s: float = Field(default=5.0, gt=0)

    # --- resilience ----------------------------------------------------------------------
    #: Attempts per provider call (1 = no retry); only timeouts, 5xx and connection errors retry.
    retry_attempts: int = Field(default=3, ge=1, le=10)
    #: First back-off between attempts; doubles each time, with jitter.
    retry_backoff_initial_s: float = Field(default=0.1, ge=0)
    #: Longest back-off between two attempts.
    retry_backoff_max_s: float = Field(default=2.0, ge=0)
    #: Consecutive system failures that open a provider's breaker.
    breaker_fail_max: int = Field(default=5, ge=1)
    #: How long an open breaker fails fast before one trial call (keep above 1 s).
    breaker_reset_timeout_s: float = Field(default=30.0, gt=1.0)
    #: Redis key namespace of the shared breaker state.
    breaker_namespace: str = "orders:breaker"

    # --- checkout and saga -----------------------------------------------------------------
    #: How long POST /orders waits for the saga before answering 202 with a Location.
    checkout_wait_s: float = Field(default=3.0, ge=0)
    #: Orders' Redis is pinged this often in the background (start to start): the saga's
    #: breakers keep their state in Redis, so with Redis down it cannot progress, and a
    #: checkout answers its 202 as soon as the watch knows, not after ``checkout_wait_s``.
    redis_watch_interval_ms: int = Field(default=250, ge=10, le=60_000)
    #: Deadline of one ping; a later answer is a miss.
    redis_watch_timeout_ms: int = Field(default=150, ge=1, le=60_000)
    #: Missed pings in a row after which Redis is known down (its breaker opens, readiness
    #: reports it, checkouts stop waiting); the first ping that answers ends that.
    redis_watch_misses: int = Field(default=2, ge=1, le=100)
    # A checkout keeps its admission slot while it waits for its saga (idle, up to
    # checkout_wait_s), so the platform default of 64 would cap checkouts near 64 per
    # checkout_wait_s; the work itself is bounded by max_concurrent_sagas.
    max_concurrent_requests: int = Field(default=512, ge=1, le=10_000)
    # The kit's 10 + 10 with the overflow folded into the pool: the same 20 connections
    # at most, none closed on its way back. A checkout load keeps more than ten busy (the
    # running sagas, the request path, the relay), and SQLAlchemy closes an overflow
    # connection when it is returned: PostgreSQL then started a session every few
    # checkouts, which doubled its CPU per checkout at 16 clients (docs/benchmarks.md).
    db_pool_size: int = 20
    db_max_overflow: int = 0
    #: How long inventory holds the stock of a checkout in progress.
    reservation_ttl_s: int = Field(default=900, ge=1)
    #: A saga's lease; renewed every third of it while the saga runs.
    saga_lease_ttl_s: float = Field(default=30.0, ge=1.0)
    # Each running saga holds one pooled connection during its step transactions, so
    # keep this below db_pool_size + db_max_overflow: beyond it sagas queue on the pool
    # instead of on the runner, and time out there (503s, sagas handed back half done).
    #: Sagas one replica runs at once (new checkouts and recovered ones together).
    max_concurrent_sagas: int = Field(default=16, ge=1)
    #: Seconds between two scans for sagas whose lease expired (also run at start-up).
    recovery_interval_s: float = Field(default=5.0, gt=0)
    #: Sagas claimed per recovery scan.
    recovery_batch_size: int = Field(default=50, ge=1)
    #: First delay before a compensation that could not finish is tried again.
    compensation_retry_initial_s: float = Field(default=1.0, gt=0)
    #: Longest delay between two rounds of a compensation that keeps failing.
    compensation_retry_max_s: float = Field(default=60.0, gt=0)
    #: Parcel weight assumed per unit (inventory has no weights yet).
    item_weight_grams: int = Field(default=500, ge=1)
    #: Run the recovery worker and the outbox relay in this process.
    background_tasks_enabled: bool = True

    # --- fraud rules ------------------------------------------------------------------------
    #: The fraud rule set, a JSON list (docs/orders.md "Fraud rules"); ``[]``: none.
    fraud_rules: str = "[]"
    #: Redis key namespace of the fraud rules' velocity counters.
    fraud_namespace: str = "orders:fraud"

    # --- events and lists -----------------------------------------------------------------
    #: Page size of order lists when none is asked for.
    page_size_default: int = Field(default=20, ge=1)
    #: Largest page size of order lists (larger is a 422).
    page_size_max: int = Field(default=100, ge=1)

    def database_urls(self) -> tuple[str, ...]:
        """The orders databases: the shards, or the one database."""
        shards = [url.strip() for url in self.database_shards.split(",") if url.strip()]
        return tuple(asyncpg_url(url) for url in shards) or (self.database_url,)

    @model_validator(mode="after")
    def _coherent(self) -> "OrdersSettings":
        urls = self.database_urls()  # a URL that is not PostgreSQL's stops the service
        if len(set(urls)) != len(urls):
            raise ValueError("database_shards names a database twice")
        if self.page_size_default > self.page_size_max:
            raise ValueError("page_size_default exceeds page_size_max")
        if self.compensation_retry_initial_s > self.compensation_retry_max_s:
            raise ValueError("compensation_retry_initial_s exceeds compensation_retry_max_s")
        parse_rules(self.fraud_rules)  # a broken rule set stops the service at start
        if self.redis_watch_timeout_ms > self.redis_watch_interval_ms:
            raise ValueError("redis_watch_timeout_ms exceeds redis_watch_interval_ms")
        return self


def fraud_rules(settings: OrdersSettings) -> tuple[FraudRule, ...]:
    """The configured fraud rule set, parsed."""
    return parse_rules(settings.fraud_rules)


def get_settings() -> OrdersSettings:
    """Settings from the environment (and ``.env``)."""
    return OrdersSettings()
