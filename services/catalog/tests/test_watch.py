"""The catalog's dependency watch: a Redis or Elasticsearch that stops answering is known
to be down without a request having to find out, the requests in flight at that moment
are released, health says so at once, and the watch's ping finds it back.

"Stops answering" is the ``silent`` server of the conftest (accepts, never replies); the
end-to-end outage test freezes the real servers with SIGSTOP.
"""

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest
from elasticsearch import AsyncElasticsearch

from catalog_service.settings import CatalogSettings

from .conftest import (
    Serve,
    SettingsWith,
    Silent,
    eventually,
    index_products,
    make_settings,
    product,
    search,
    state_of,
)

#: Far longer than any answer below may take: the old behaviour waited these out.
LONG_S = 30.0
#: For a silent server only: a real one may be slower than this on a loaded machine.
FAST_WATCH = {
    "watch_enabled": True,
    "watch_interval_ms": 50,
    "watch_timeout_ms": 50,
    "watch_misses": 2,
}


@pytest.fixture
def watched_silent_elasticsearch(silent_elasticsearch_settings: SettingsWith) -> CatalogSettings:
    """A silent Elasticsearch, watched fast; searches would wait on it for ``LONG_S``:
    only the watch can end them sooner."""
    return silent_elasticsearch_settings(elasticsearch_timeout_s=LONG_S, **FAST_WATCH)


def is_open(client: httpx.AsyncClient, which: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        state = state_of(client)
        breaker = state.product_search.breaker if which == "es" else state.search_cache.breaker
        return bool(breaker.is_open)

    return check


async def test_a_silent_elasticsearch_is_known_down_before_any_search_and_then_refused(
    serve: Serve, silent: Silent, watched_silent_elasticsearch: CatalogSettings
) -> None:
    async with serve(watched_silent_elasticsearch) as client:
        breaker = state_of(client).product_search.breaker
        await eventually(is_open(client, "es"), within_s=LONG_S)
        refused = [await search(client, f"q{i}") for i in range(5)]
        page = await client.get("/api/v1/products/0190f0c2-6f1e-7cc0-9d1e-5b2a3c4d5e6f")
        ready = await client.get("/health/ready")

    assert breaker.tripped
    for response in [*refused, page]:
        assert response.status_code == 503
        assert response.json()["code"] == "search_unavailable"
        assert int(response.headers["retry-after"]) >= 1
    # No search and no product page reached Elasticsearch: only the watch's pings did.
    assert silent.count(b"_search") == 0
    assert silent.count(b"/_doc/") == 0
    assert silent.count(b"GET /_cluster/health") >= watched_silent_elasticsearch.watch_misses
    assert ready.status_code == 503
    assert ready.json()["checks"]["elasticsearch"] == "down: BreakerOpen"


async def test_a_search_in_flight_when_elasticsearch_is_found_down_is_released(
    serve: Serve, silent: Silent, watched_silent_elasticsearch: CatalogSettings
) -> None:
    async with serve(watched_silent_elasticsearch) as client:
        state = state_of(client)
        breaker = state.product_search.breaker
        # The service's own watch found the silent server while starting; here the
        # test drives it, so the searches are surely in flight when it trips.
        watch = next(w for w in state.watches if w.breaker is breaker)
        await watch.stop()
        breaker.record_success()
        in_flight = [asyncio.create_task(search(client, f"f{i}")) for i in range(5)]

        async def reached() -> bool:
            return silent.count(b"_search") == 5

        await eventually(reached, within_s=LONG_S)
        assert not any(task.done() for task in in_flight)
        for _ in range(watch.misses):
            assert await watch.check() is False
        # Released when the watch trips, not after the 30 s Elasticsearch timeout.
        answers = await asyncio.wait_for(asyncio.gather(*in_flight), timeout=LONG_S / 2)

    assert breaker.tripped
    assert {r.status_code for r in answers} == {503}
    assert {r.json()["code"] for r in answers} == {"search_unavailable"}


async def test_a_silent_redis_is_skipped_from_the_first_search_after_the_watch_found_it(
    serve: Serve,
    elasticsearch_url: str,
    es: AsyncElasticsearch,
    settings: CatalogSettings,
    empty_index: str,
    silent: Silent,
) -> None:
    await index_products(es, settings, [product("Google Pixel 8", brand="Google", price=69_900)])
    settings = make_settings(
        elasticsearch_url,
        f"redis://{silent.url}/0",
        settings.index_alias,
        listener_enabled=False,
        cache_timeout_ms=10_000,  # only the watch can make a search skip sooner
        # The conftest's unhurried watch: Elasticsearch, real and perhaps slow on a loaded
        # machine, is watched with the same settings and must not be found down.
        watch_enabled=True,
    )
    async with serve(settings) as client:
        await eventually(is_open(client, "redis"), within_s=LONG_S)
        answers = [await search(client, "pixel") for _ in range(5)]
        ready = await client.get("/health/ready")

    assert {r.status_code for r in answers} == {200}
    assert {r.json()["items"][0]["name"] for r in answers} == {"Google Pixel 8"}
    # No cache command was sent: the searches went straight to Elasticsearch.
    assert silent.count(settings.redis_prefix.encode()) == 0
    assert ready.json()["checks"]["redis"] == "down: BreakerOpen"


async def test_the_watch_closes_the_breaker_when_elasticsearch_answers_again(
    serve: Serve, indexed: CatalogSettings
) -> None:
    settings = indexed.model_copy(update={"watch_enabled": True})
    async with serve(settings) as client:
        breaker = state_of(client).product_search.breaker
        breaker.trip()  # as after missed pings: the real Elasticsearch answers the next one
        refused = await search(client, "pixel")

        async def closed() -> bool:
            return breaker.state == "closed"

        await eventually(closed, within_s=LONG_S)
        found = await search(client, "pixel")
        ready = await client.get("/health/ready")

    assert refused.status_code == 503
    assert found.status_code == 200
    assert found.json()["items"][0]["name"] == "Google Pixel 8"
    assert ready.status_code == 200
