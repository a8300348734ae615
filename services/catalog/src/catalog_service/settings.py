"""Settings of the catalog service (environment prefix ``CATALOG_``)."""

import os
import re
import socket
from typing import ClassVar

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from storefront_kit.rate_limits import check_rate
from storefront_kit.settings import ServiceSettings

__all__ = ["CatalogSettings", "get_settings"]

_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,150}$")


class CatalogSettings(ServiceSettings):
    """Everything the catalog service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="CATALOG_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "catalog"
    port: int = 8102

    # --- Elasticsearch -------------------------------------------------------------
    elasticsearch_url: str = "http://127.0.0.1:9200"
    #: Per-request timeout: a hanging Elasticsearch becomes a quick 503, not a hung request.
    elasticsearch_timeout_s: float = Field(default=2.0, gt=0)
    #: Retries of a failed request (connection errors only; timeouts are not retried).
    elasticsearch_max_retries: int = Field(default=1, ge=0, le=5)
    #: The alias searches and writes go through; concrete indices are ``<alias>-<timestamp>``.
    index_alias: str = "products"
    #: Primary shards of a new index.
    index_shards: int = Field(default=1, ge=1, le=64)
    #: Replicas of a new index (0 on a single node, or the cluster stays yellow).
    index_replicas: int = Field(default=0, ge=0, le=10)
    #: Elasticsearch's own periodic refresh of the index ("1s", ...). Off by default: the
    #: listener refreshes what it wrote (``events_flush_ms``), and a scheduled refresh
    #: as well made more segments of the same writes (issue 17).
    index_refresh_interval: str = "-1"

    # --- Search --------------------------------------------------------------------
    #: Largest ``size`` a search may ask for (larger is a 422).
    max_page_size: int = Field(default=100, ge=1, le=1000)
    #: Deepest hit a search may page to (``page * size``); Elasticsearch's result window.
    max_result_window: int = Field(default=10_000, ge=1, le=10_000)
    #: Longest accepted ``q``.
    max_query_length: int = Field(default=200, ge=1, le=1000)
    #: Upper bounds (minor units) of the price facet buckets; the last bucket is open-ended.
    price_facet_bounds: list[int] = [1_000, 5_000, 10_000, 50_000, 100_000]
    #: Most values returned per category/brand facet.
    facet_size: int = Field(default=20, ge=1, le=200)

    # --- Cache ---------------------------------------------------------------------
    #: Prefix of every Redis key this service writes (cache, catalogue version, locks).
    redis_prefix: str = "catalog"
    #: Search answers are cached on; False sends every search to Elasticsearch.
    cache_enabled: bool = True
    #: Lifetime of a cached search answer (the catalogue version invalidates it sooner).
    cache_ttl_s: int = Field(default=60, ge=1)
    #: How long one request may hold the right to recompute a missing answer.
    cache_lock_ms: int = Field(default=2_000, ge=10)
    #: How often a request waiting for another's recomputation looks for the answer.
    cache_wait_poll_ms: int = Field(default=10, ge=1)
    #: Longest one cache read or write may take; a slower Redis is skipped (and counted
    #: by its breaker), as a cache is only worth what it saves.
    cache_timeout_ms: int = Field(default=500, ge=1, le=10_000)
    #: How long a failed recomputation is remembered: requests for the same answer get
    #: the 503 at once instead of asking Elasticsearch again one after another.
    cache_failure_memory_ms: int = Field(default=1_000, ge=0, le=60_000)

    # --- Breakers (per process, one per dependency) -----------------------------------
    #: Consecutive failures or timeouts of Redis (Elasticsearch) that open its breaker.
    breaker_failure_threshold: int = Field(default=3, ge=1, le=1000)
    #: Seconds an open breaker refuses calls before one probe may try the dependency.
    breaker_reset_s: float = Field(default=2.0, gt=0, le=300)
    #: Deadline of the half-open probe (the one search that finds out whether
    #: Elasticsearch is back), so it does not wait out the whole Elasticsearch timeout.
    breaker_probe_timeout_ms: int = Field(default=500, ge=1, le=60_000)

    # --- Dependency watch (per process: Redis and Elasticsearch) -----------------------
    #: Ping Redis and Elasticsearch in the background and open their breakers after
    #: ``watch_misses`` missed pings, so no request has to wait out a timeout to find an
    #: outage; the watch's ping, not a request, then finds the dependency back. False:
    #: requests find outages (``breaker_failure_threshold``) and probe (half-open).
    watch_enabled: bool = True
    #: Time between two pings of one dependency (start to start).
    watch_interval_ms: int = Field(default=250, ge=10, le=60_000)
    #: Deadline of one ping; a later answer is a miss.
    watch_timeout_ms: int = Field(default=150, ge=1, le=60_000)
    #: Missed pings in a row that open the dependency's breaker. An outage is known at
    #: most ``watch_interval_ms * watch_misses + watch_timeout_ms`` after it began.
    watch_misses: int = Field(default=2, ge=1, le=100)

    # --- Rate limit ----------------------------------------------------------------
    #: Searches one client IP may make (limits syntax, fixed window, shared through Redis
    #: by every replica behind every gateway; the gateway also limits per address).
    search_ip_rate_limit: str = "3000/minute"
    #: With Redis unreachable, let searches through unchecked (the gateway's per-address
    #: zone still holds) instead of answering 503 `rate_limit_unavailable`.
    rate_limit_fail_open: bool = True

    # --- Event listener ------------------------------------------------------------
    #: Run the ``inventory.events`` consumer in this process.
    listener_enabled: bool = True
    #: Stream of inventory's domain events.
    events_stream: str = "inventory.events"
    #: Consumer group of all catalog replicas.
    events_group: str = "catalog"
    #: This replica's consumer name; unset means host name and process id (replicas on one
    #: host never share one; a dead replica's entries are claimed by a live one).
    instance_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    #: Handler attempts before an event is parked in ``<stream>.dead``.
    events_max_attempts: int = Field(default=5, ge=1)
    #: How long one XREADGROUP blocks waiting for new events.
    events_block_ms: int = Field(default=1_000, ge=1)
    #: Entries read per XREADGROUP.
    events_batch_size: int = Field(default=100, ge=1, le=10_000)
    #: Least time between two refreshes: the longest a written change waits to be searchable.
    events_flush_ms: int = Field(default=1_000, ge=1)
    #: Pending entries of a dead replica older than this are taken over.
    events_claim_idle_ms: int = Field(default=30_000, ge=100)
    #: A consumer (a dead replica's) that has not read for this long is removed from the
    #: group, once nothing is pending for it (its entries were claimed).
    events_dead_consumer_idle_ms: int = Field(default=600_000, ge=1000)
    #: How long processed event ids are remembered for de-duplication.
    events_dedupe_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)

    # --- Reindex -------------------------------------------------------------------
    #: Base URL of the inventory service (for the paged export the reindex reads).
    inventory_url: str = "http://127.0.0.1:8103"
    #: Products asked per export page.
    reindex_page_size: int = Field(default=500, ge=1, le=1000)
    #: Per-request timeout of the reindex command (bulk writes and export pages take longer).
    reindex_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("index_alias")
    @classmethod
    def _valid_index_name(cls, value: str) -> str:
        if not _INDEX_NAME.match(value):
            raise ValueError("index_alias must be a lowercase Elasticsearch index name")
        return value

    @field_validator("search_ip_rate_limit")
    @classmethod
    def _limits_syntax(cls, value: str) -> str:
        return check_rate(value)

    @field_validator("price_facet_bounds")
    @classmethod
    def _ascending_bounds(cls, value: list[int]) -> list[int]:
        if not value or value != sorted(set(value)) or value[0] <= 0:
            raise ValueError("price_facet_bounds must be positive, ascending and unique")
        return value

    @model_validator(mode="after")
    def _coherent_limits(self) -> "CatalogSettings":
        if self.max_page_size > self.max_result_window:
            raise ValueError("max_page_size exceeds max_result_window")
        if self.events_dead_consumer_idle_ms <= self.events_block_ms:
            # A live replica is idle for up to one block between two reads.
            raise ValueError("events_dead_consumer_idle_ms must exceed events_block_ms")
        if self.watch_timeout_ms > self.watch_interval_ms:
            raise ValueError("watch_timeout_ms exceeds watch_interval_ms")
        return self


def get_settings() -> CatalogSettings:
    """Settings from the environment (and ``.env``)."""
    return CatalogSettings()
