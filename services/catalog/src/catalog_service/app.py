"""The catalog service as an ASGI app (``uvicorn catalog_service.app:create_app --factory``)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from catalog_service.api import routers
from catalog_service.clients.elasticsearch import create_elasticsearch
from catalog_service.clients.search_index import ensure_index
from catalog_service.service.cache import SearchCache
from catalog_service.service.search import ProductSearch, elasticsearch_breaker
from catalog_service.settings import CatalogSettings, get_settings
from catalog_service.state import CatalogState
from catalog_service.workers.listener import CatalogListener, run_listener
from storefront_kit.app import create_service_app
from storefront_kit.breaker import Breaker
from storefront_kit.health import HealthCheck, elasticsearch_check, redis_check
from storefront_kit.rate_limits import RateLimiter
from storefront_kit.redis import redis_from_settings
from storefront_kit.state import service_state
from storefront_kit.tasks import background_loops
from storefront_kit.watch import DependencyWatch, elasticsearch_ping, redis_ping

__all__ = ["create_app"]

#: Each tag of the routes, and what it groups (the docs page shows them in this order).
OPENAPI_TAGS = {
    "catalog": "Typo-tolerant product search and product pages (public, read-only).",
}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[CatalogState]:
    """Create the service's clients and the event listener once; stop and close on shutdown."""
    settings: CatalogSettings = app.state.settings
    redis = redis_from_settings(settings)
    elasticsearch = create_elasticsearch(settings)
    cache = SearchCache(
        redis,
        prefix=settings.redis_prefix,
        ttl_s=settings.cache_ttl_s,
        lock_ms=settings.cache_lock_ms,
        poll_ms=settings.cache_wait_poll_ms,
        enabled=settings.cache_enabled,
        timeout_ms=settings.cache_timeout_ms,
        failure_memory_ms=settings.cache_failure_memory_ms,
        breaker=Breaker(
            "redis",
            failure_threshold=settings.breaker_failure_threshold,
            reset_timeout_s=settings.breaker_reset_s,
            is_failure=lambda exc: isinstance(exc, RedisConnectionError | RedisTimeoutError),
        ),
    )
    product_search = ProductSearch(
        elasticsearch, cache=cache, settings=settings, breaker=elasticsearch_breaker(settings)
    )
    limiter = RateLimiter(
        settings.redis_url,
        {"search_ip": settings.search_ip_rate_limit},
        key_prefix=f"{settings.redis_prefix}:rl",
        socket_timeout=settings.redis_socket_timeout_s,
        strategy="fixed-window",  # one counter per address and minute: one cheap round trip
        fail_open=settings.rate_limit_fail_open,
        # The cache's Redis breaker: a search never waits on a Redis known to be down.
        breaker=cache.breaker,
        timeout_s=settings.cache_timeout_ms / 1000,
    )
    # Outages are found by a background ping, not by requests waiting out timeouts.
    watches = (
        tuple(
            DependencyWatch(
                breaker,
                ping,
                interval_s=settings.watch_interval_ms / 1000,
                timeout_s=settings.watch_timeout_ms / 1000,
                misses=settings.watch_misses,
            )
            for breaker, ping in (
                (cache.breaker, redis_ping(redis)),
                (product_search.breaker, elasticsearch_ping(elasticsearch)),
            )
        )
        if settings.watch_enabled
        else ()
    )
    for watch in watches:
        watch.start()
    listener = (
        CatalogListener(es=elasticsearch, redis=redis, settings=settings, cache=cache)
        if settings.listener_enabled
        else None
    )
    with contextlib.suppress(Exception):
        # Usually the index is there (or created) before the first request; if
        # Elasticsearch is down the background task below keeps trying.
        await asyncio.wait_for(ensure_index(elasticsearch, settings), timeout=5.0)
    try:
        async with background_loops(timeout_s=settings.events_block_ms / 1000 + 2) as loops:
            # Index bootstrap (and the listener) run in the background: the service starts
            # and reports "not ready" while Elasticsearch is down instead of failing to start.
            loops.start(
                run_listener(elasticsearch, settings, listener, loops.stop),
                name="catalog-listener",
            )
            yield CatalogState(
                settings=settings,
                redis=redis,
                redis_breaker=cache.breaker,
                elasticsearch=elasticsearch,
                search_cache=cache,
                product_search=product_search,
                rate_limiter=limiter,
                watches=watches,
            )
    finally:
        for watch in watches:
            await watch.stop()
        await elasticsearch.close()
        await limiter.aclose()
        await redis.aclose()


def _health_checks(request: Request) -> Sequence[HealthCheck]:
    state = service_state(request, CatalogState)
    return [
        redis_check(state.redis, breaker=state.search_cache.breaker),
        elasticsearch_check(state.elasticsearch, breaker=state.product_search.breaker),
    ]


def create_app(settings: CatalogSettings | None = None) -> FastAPI:
    """Build the catalog service app."""
    return create_service_app(
        settings=settings or get_settings(),
        title="Catalog",
        description="Typo-tolerant product search on an Elasticsearch read model.",
        version="0.1.0",
        lifespan=lifespan,
        routers=routers,
        health_checks=_health_checks,
        openapi_tags=OPENAPI_TAGS,
    )
