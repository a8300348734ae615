"""Search answers are cached per catalogue version, recomputed once under a stampede,
and the service degrades to 503 problems (never hangs) when Elasticsearch is down."""

import asyncio
import time
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from catalog_service.schemas import SearchParams, SearchResponse
from catalog_service.service import search
from catalog_service.service.cache import catalogue_version_key, search_prefix
from catalog_service.settings import CatalogSettings
from storefront_kit.redis import is_cluster_url

from .conftest import Serve, index_products, make_settings, product, state_of

DEAD_PORT_URL = "http://127.0.0.1:1"  # nothing listens on port 1
DEAD_REDIS = "redis://127.0.0.1:1/0"

# On one Redis server and on a three-master Redis Cluster (docs/redis.md).
pytestmark = pytest.mark.redis_modes


def cache_prefix(settings: CatalogSettings) -> str:
    """The cache's key prefix (a hash tag on a cluster)."""
    return search_prefix(settings.redis_prefix, cluster=is_cluster_url(settings.redis_url))


async def keys(redis: Redis, pattern: str) -> list[str]:
    """Keys matching ``pattern`` on the server or on every master of the cluster."""
    return [key async for key in redis.scan_iter(match=pattern, count=1000)]


def cache_count(result: str) -> float:
    return REGISTRY.get_sample_value("catalog_search_cache_total", {"result": result}) or 0.0


@pytest.fixture
async def indexed(
    es: AsyncElasticsearch, settings: CatalogSettings, empty_index: str
) -> CatalogSettings:
    await index_products(
        es,
        settings,
        [
            product("Apple iPhone 15", brand="Apple", category="Phones", price=79_900),
            product("Google Pixel 8", brand="Google", category="Phones", price=69_900),
        ],
    )
    # No listener: these tests bump the version themselves, and a listener's start-up bump
    # would race with their first request.
    return settings.model_copy(update={"listener_enabled": False})


@pytest.fixture
def counted_search(monkeypatch: pytest.MonkeyPatch) -> list[SearchParams]:
    """Every search that reaches Elasticsearch, recorded (and slowed a little to overlap)."""
    calls: list[SearchParams] = []
    real = search.search_products

    async def counting(
        es: AsyncElasticsearch, *, params: SearchParams, settings: CatalogSettings
    ) -> SearchResponse:
        calls.append(params)
        await asyncio.sleep(0.05)
        return await real(es, params=params, settings=settings)

    monkeypatch.setattr(search, "search_products", counting)
    return calls


async def test_the_second_identical_search_is_a_cache_hit(
    serve: Serve, indexed: CatalogSettings, counted_search: list[SearchParams]
) -> None:
    hits, misses = cache_count("hit"), cache_count("miss")
    async with serve(indexed) as client:
        first = await client.get("/api/v1/products/search", params={"q": "iphone"})
        # Same search, written differently: normalised to the same key.
        second = await client.get("/api/v1/products/search", params={"q": "  IPhone "})
        metrics = (await client.get("/metrics")).text
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["items"][0]["name"] == "Apple iPhone 15"
    assert len(counted_search) == 1
    assert (cache_count("hit") - hits, cache_count("miss") - misses) == (1, 1)
    assert 'catalog_search_cache_total{result="hit"}' in metrics


async def test_a_catalogue_change_invalidates_cached_answers(
    serve: Serve,
    indexed: CatalogSettings,
    counted_search: list[SearchParams],
    redis: Redis,
    es: AsyncElasticsearch,
) -> None:
    async with serve(indexed) as client:
        before = await client.get("/api/v1/products/search", params={"category": "phones"})
        await index_products(es, indexed, [product("Nothing Phone 2", category="Phones")])
        cached = await client.get("/api/v1/products/search", params={"category": "phones"})
        assert cached.json() == before.json()  # same version: served from the cache
        await state_of(client).search_cache.bump()  # what the listener does after a flush
        after = await client.get("/api/v1/products/search", params={"category": "phones"})
    assert (before.json()["total"], after.json()["total"]) == (2, 3)
    assert len(counted_search) == 2
    version_key = catalogue_version_key(
        indexed.redis_prefix, cluster=is_cluster_url(indexed.redis_url)
    )
    assert await redis.get(version_key) == "1"


async def test_a_stampede_of_identical_searches_reaches_elasticsearch_once(
    serve: Serve, indexed: CatalogSettings, counted_search: list[SearchParams], redis: Redis
) -> None:
    hits = cache_count("hit")
    async with serve(indexed) as client:
        responses = await asyncio.gather(
            *(
                client.get("/api/v1/products/search", params={"q": "pixel", "sort": "price_asc"})
                for _ in range(50)
            )
        )
    assert {r.status_code for r in responses} == {200}
    assert len({r.text for r in responses}) == 1
    assert len(counted_search) == 1
    assert cache_count("hit") - hits == 49
    # The leader stored its answer and gave the lock back (one pipeline): nothing waits
    # out the lock's lifetime on the next miss.
    assert await keys(redis, f"{cache_prefix(indexed)}:search:*:lock") == []
    assert len(await keys(redis, f"{cache_prefix(indexed)}:search:*")) == 1


async def test_search_still_answers_when_redis_is_down(
    serve: Serve, elasticsearch_url: str, indexed: CatalogSettings
) -> None:
    settings = make_settings(
        elasticsearch_url, DEAD_REDIS, indexed.index_alias, listener_enabled=False
    )
    async with serve(settings) as client:
        response = await client.get("/api/v1/products/search", params={"q": "pixel"})
    assert response.status_code == 200
    assert [i["name"] for i in response.json()["items"]] == ["Google Pixel 8"]


async def test_elasticsearch_down_is_a_quick_503_problem(
    serve: Serve, redis_url: str, alias: str
) -> None:
    settings = make_settings(DEAD_PORT_URL, redis_url, alias)
    async with serve(settings) as client:
        started = time.monotonic()
        found = await client.get("/api/v1/products/search", params={"q": "iphone"})
        product_page = await client.get("/api/v1/products/0190f0c2-6f1e-7cc0-9d1e-5b2a3c4d5e6f")
        elapsed = time.monotonic() - started
        ready = await client.get("/health/ready")
    assert elapsed < 2.0
    for response in (found, product_page):
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "1"
        body: dict[str, Any] = response.json()
        assert body["code"] == "search_unavailable"
        assert body["detail"] == "Search is temporarily unavailable; retry shortly."
        assert "127.0.0.1" not in response.text
        assert "Connection" not in response.text
    assert ready.status_code == 503
    assert ready.json()["down"] == ["elasticsearch"]


async def test_a_cached_answer_survives_an_elasticsearch_outage(
    serve: Serve, indexed: CatalogSettings, redis_url: str
) -> None:
    async with serve(indexed) as client:
        fresh = await client.get("/api/v1/products/search", params={"q": "pixel"})
    outage = make_settings(DEAD_PORT_URL, redis_url, indexed.index_alias)
    async with serve(outage) as client:
        cached = await client.get("/api/v1/products/search", params={"q": "pixel"})
        uncached = await client.get("/api/v1/products/search", params={"q": "iphone"})
    assert cached.status_code == 200
    assert cached.json() == fresh.json()
    assert uncached.status_code == 503


def test_cache_keys_differ_by_params_and_by_catalogue_version() -> None:
    from catalog_service.service.cache import SearchCache

    cache = SearchCache(Redis(), prefix="p", ttl_s=1, lock_ms=10)
    a = SearchParams.normalised(q="Phone", page=1)
    assert cache.key(a, 1) == cache.key(SearchParams.normalised(q=" phone  "), 1)
    assert cache.key(a, 1) != cache.key(a, 2)
    assert cache.key(a, 1) != cache.key(SearchParams.normalised(q="phone", page=2), 1)
    assert cache.key(a, 1).startswith("p:search:1:")
