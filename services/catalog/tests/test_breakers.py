"""A dependency that stops answering is known to be down and said so at once: the
breakers skip Redis and refuse Elasticsearch without waiting, health names the open
breaker, and waiters on the cache lock stop as soon as their leader fails.

"Stops answering" is a listening socket that accepts and never replies: what a frozen
(SIGSTOPped) or partitioned server looks like to a client, the case a refused
connection does not cover. The end-to-end outage test freezes the real servers.
"""

import asyncio

from redis.asyncio import Redis

from catalog_service.settings import CatalogSettings

from .conftest import Serve, SettingsWith, Silent, make_settings, search, state_of


async def test_a_silent_elasticsearch_opens_its_breaker_and_searches_then_fail_at_once(
    serve: Serve, silent: Silent, silent_elasticsearch_settings: SettingsWith
) -> None:
    settings = silent_elasticsearch_settings(
        elasticsearch_timeout_s=0.3,
        breaker_failure_threshold=2,
        breaker_reset_s=30,
        cache_failure_memory_ms=0,
        watch_enabled=False,  # the requests find the outage here (test_watch.py: the watch)
    )
    async with serve(settings) as client:
        timed_out = [await search(client, f"first{i}") for i in range(2)]
        reached = silent.count(b"_search")
        refused = [await search(client, f"later{i}") for i in range(5)]
        product_page = await client.get("/api/v1/products/0190f0c2-6f1e-7cc0-9d1e-5b2a3c4d5e6f")
        ready = await client.get("/health/ready")
        breaker = state_of(client).product_search.breaker

    assert [r.status_code for r in timed_out] == [503, 503]
    assert reached == 2
    assert breaker.state == "open"
    for response in [*refused, product_page]:
        assert response.status_code == 503
        assert response.json()["code"] == "search_unavailable"
        # The probe is due in up to 30 s: the client is told so.
        assert 1 < int(response.headers["retry-after"]) <= 30
    # Nothing more reached Elasticsearch once the breaker was open.
    assert silent.count(b"_search") == 2
    assert silent.count(b"/_doc/") == 0
    assert ready.status_code == 503
    assert ready.json()["checks"]["elasticsearch"] == "down: BreakerOpen"


async def test_waiters_on_a_failing_leader_stop_with_it_and_its_failure_is_remembered(
    serve: Serve, silent: Silent, silent_elasticsearch_settings: SettingsWith
) -> None:
    settings = silent_elasticsearch_settings(
        elasticsearch_timeout_s=0.5,
        breaker_failure_threshold=1000,  # the failure memory alone, no breaker
        watch_enabled=False,
        cache_failure_memory_ms=5_000,
        cache_lock_ms=30_000,
        cache_timeout_ms=10_000,  # a loaded test machine must not skip the cache here
    )
    async with serve(settings) as client:
        stampede = await asyncio.gather(*(search(client, "pixel") for _ in range(20)))
        again = await search(client, "pixel")
        other = await search(client, "iphone")

    assert {r.status_code for r in [*stampede, again, other]} == {503}
    # One leader asked Elasticsearch for "pixel"; its 19 waiters and the next request
    # took its failure instead of asking again (or waiting out the 30 s lock).
    assert silent.count(b"_search") == 2


async def test_a_silent_redis_is_skipped_and_then_not_waited_for(
    serve: Serve, elasticsearch_url: str, indexed: CatalogSettings, silent: Silent
) -> None:
    settings = make_settings(
        elasticsearch_url,
        f"redis://{silent.url}/0",
        indexed.index_alias,
        listener_enabled=False,
        cache_timeout_ms=200,
        breaker_failure_threshold=2,
        breaker_reset_s=30,
        watch_enabled=False,  # the requests find the outage here (test_watch.py: the watch)
    )
    async with serve(settings) as client:
        answers = [await search(client, "pixel") for _ in range(6)]
        connections_sent = len(silent.received)
        ready = await client.get("/health/ready")
        breaker = state_of(client).search_cache.breaker
        more = [await search(client, "pixel") for _ in range(5)]

    assert {r.status_code for r in [*answers, *more]} == {200}
    assert {r.json()["items"][0]["name"] for r in answers} == {"Google Pixel 8"}
    assert breaker.state == "open"
    assert ready.json()["checks"]["redis"] == "down: BreakerOpen"
    # Two cache lookups timed out (each on its connection's first command); once the
    # breaker was open, no search sent Redis anything.
    assert connections_sent == settings.breaker_failure_threshold
    assert len(silent.received) == connections_sent


async def test_the_breaker_closes_by_itself_once_redis_answers_again(
    serve: Serve, indexed: CatalogSettings, redis: Redis
) -> None:
    # Without a watch a request probes; with one, its ping does (test_watch.py).
    settings = indexed.model_copy(update={"breaker_reset_s": 1.0, "watch_enabled": False})
    async with serve(settings) as client:
        breaker = state_of(client).search_cache.breaker
        for _ in range(settings.breaker_failure_threshold):
            breaker.record_failure()
        assert breaker.state == "open"
        skipped = await search(client, "pixel")
        assert await redis.keys(f"{settings.redis_prefix}:search:*") == []
        await asyncio.sleep(1.05)  # the reset time: long enough for a loaded machine
        probe = await search(client, "pixel")
        cached = await search(client, "pixel")

    assert skipped.status_code == probe.status_code == cached.status_code == 200
    assert breaker.state == "closed"
    assert len(await redis.keys(f"{settings.redis_prefix}:search:*")) == 1
