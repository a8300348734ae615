"""The listener keeps the index in step with inventory's events, whatever the delivery."""

import asyncio
import uuid
from typing import Any

import httpx
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from catalog_service import repository
from catalog_service.domain.documents import product_document
from catalog_service.events import ProductData, StockData
from catalog_service.service.cache import catalogue_version_key
from catalog_service.settings import CatalogSettings
from storefront_kit.events import EventEnvelope

from .conftest import Serve, envelope, eventually, product


async def publish(redis: Redis, settings: CatalogSettings, *events: EventEnvelope) -> None:
    for event in events:
        await redis.xadd(settings.events_stream, event.to_stream_fields())  # type: ignore[arg-type]


async def search_names(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/api/v1/products/search", params=params)
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


async def document(es: AsyncElasticsearch, settings: CatalogSettings, product_id: str) -> Any:
    response = await es.get(index=settings.index_alias, id=product_id)
    return response["_source"]


async def version(redis: Redis, settings: CatalogSettings) -> int:
    return int(await redis.get(catalogue_version_key(settings.redis_prefix)) or 0)


async def drained(redis: Redis, settings: CatalogSettings) -> bool:
    """Every published entry was delivered and acknowledged."""
    groups = await redis.xinfo_groups(settings.events_stream)
    group = next((g for g in groups if g["name"] == settings.events_group), None)
    stream = await redis.xinfo_stream(settings.events_stream)
    return (
        group is not None
        and group["pending"] == 0
        and group["last-delivered-id"] == stream["last-generated-id"]
    )


async def test_upsert_then_delete_reach_search_within_a_second(
    serve: Serve, settings: CatalogSettings, redis: Redis
) -> None:
    item = product("Fairphone 5", brand="Fairphone", category="Phones")
    async with serve(settings) as client:
        await publish(redis, settings, envelope("product.upserted", item))
        await eventually(lambda: _contains(client, "fairphone", "Fairphone 5"))
        page = await client.get(f"/api/v1/products/{item['id']}")
        assert page.status_code == 200
        assert page.json()["available"] == 5

        await publish(
            redis, settings, envelope("product.deleted", {"id": item["id"], "sku": item["sku"]})
        )
        await eventually(lambda: _absent(client, "fairphone"))
        gone = await client.get(f"/api/v1/products/{item['id']}")
        assert gone.status_code == 404
        assert gone.json()["code"] == "product_not_found"
        # One bump when the listener started, then one per flushed change.
        assert await version(redis, settings) == 3


async def _contains(client: httpx.AsyncClient, q: str, name: str) -> bool:
    return name in await search_names(client, q=q)


async def _shows(client: httpx.AsyncClient, q: str, hit: tuple[str, int]) -> bool:
    response = await client.get("/api/v1/products/search", params={"q": q})
    assert response.status_code == 200, response.text
    return [(item["name"], item["available"]) for item in response.json()["items"]] == [hit]


async def _absent(client: httpx.AsyncClient, q: str) -> bool:
    return not await search_names(client, q=q)


async def test_an_older_event_never_overwrites_a_newer_document(
    serve: Serve, settings: CatalogSettings, redis: Redis, es: AsyncElasticsearch
) -> None:
    product_id = uuid.uuid4()
    newer = product("Kettle v3", product_id=product_id, sku="KETTLE-1", version=3, price=3_000)
    older = product("Kettle v2", product_id=product_id, sku="KETTLE-1", version=2, price=2_000)
    stock = {"sku": "KETTLE-1", "product_id": str(product_id), "reserved": 0}
    async with serve(settings) as client:
        await publish(
            redis,
            settings,
            envelope("product.upserted", newer),
            envelope("product.upserted", older),
            envelope("stock.changed", {**stock, "on_hand": 9, "available": 9, "version": 5}),
            envelope("stock.changed", {**stock, "on_hand": 4, "available": 4, "version": 4}),
        )
        await eventually(lambda: drained(redis, settings))
        source = await document(es, settings, str(product_id))
        assert (source["name"], source["price"], source["version"]) == ("Kettle v3", 3_000, 3)
        assert (source["available"], source["stock_version"]) == (9, 5)
        # Acknowledged entries become searchable at their flush, up to a flush interval
        # later; once the stock shows in search, that flush (and its bump) is done.
        await eventually(lambda: _shows(client, "kettle", ("Kettle v3", 9)))
        assert await search_names(client, q="kettle") == ["Kettle v3"]
        # Stale events (new ids, old versions) change nothing and invalidate nothing.
        before = await version(redis, settings)
        await publish(
            redis,
            settings,
            envelope("product.upserted", older),
            envelope("stock.changed", {**stock, "on_hand": 4, "available": 4, "version": 4}),
        )
        await eventually(lambda: drained(redis, settings))
        assert await version(redis, settings) == before
        assert (await document(es, settings, str(product_id)))["available"] == 9


async def test_stock_before_its_product_is_kept_and_merged(
    serve: Serve, settings: CatalogSettings, redis: Redis, es: AsyncElasticsearch
) -> None:
    item = product("Toaster", sku="TOASTER-1", available=1)
    async with serve(settings) as client:
        stock = {
            "sku": "TOASTER-1",
            "product_id": item["id"],
            "on_hand": 12,
            "reserved": 2,
            "available": 10,
            "version": 2,
        }
        await publish(redis, settings, envelope("stock.changed", stock))
        await eventually(lambda: drained(redis, settings))
        assert await search_names(client, q="toaster") == []  # no product yet: not searchable
        await publish(redis, settings, envelope("product.upserted", item))
        await eventually(lambda: _contains(client, "toaster", "Toaster"))
        source = await document(es, settings, item["id"])
        assert (source["on_hand"], source["reserved"], source["available"]) == (12, 2, 10)


async def test_a_redelivered_event_is_applied_once(
    serve: Serve, settings: CatalogSettings, redis: Redis
) -> None:
    first = product("Blender", price=5_000)
    event = envelope("product.upserted", first)
    marker = envelope("product.upserted", product("Mixer"))
    async with serve(settings) as client:
        await publish(redis, settings, event, event, event, marker)
        await eventually(lambda: _contains(client, "mixer", "Mixer"))
        await eventually(lambda: drained(redis, settings))
        assert await search_names(client, q="blender") == ["Blender"]
        # Delivered once more (same event id): skipped, so nothing is invalidated.
        before = await version(redis, settings)
        await publish(redis, settings, event)
        await eventually(lambda: drained(redis, settings))
        assert await version(redis, settings) == before
        assert await search_names(client, q="blender") == ["Blender"]


async def test_a_poison_message_is_dead_lettered_and_the_rest_flows(
    serve: Serve, settings: CatalogSettings, redis: Redis
) -> None:
    bad = envelope("product.upserted", {"id": "not-a-uuid", "name": "Broken"})
    good = envelope("product.upserted", product("Juicer"))
    async with serve(settings) as client:
        await redis.xadd(settings.events_stream, {"envelope": "{not json"})
        await publish(redis, settings, bad, good)
        await eventually(lambda: _contains(client, "juicer", "Juicer"))
        await eventually(lambda: drained(redis, settings))
    dead = await redis.xrange(f"{settings.events_stream}.dead")
    assert len(dead) == 2
    assert dead[0][1]["dead_reason"].startswith("unparseable")
    assert dead[1][1]["id"] == str(bad.id)
    assert dead[1][1]["dead_reason"].startswith("poison: product.upserted with an invalid payload")
    assert dead[1][1]["group"] == settings.events_group


async def test_unknown_event_types_are_acknowledged_and_ignored(
    serve: Serve, settings: CatalogSettings, redis: Redis
) -> None:
    async with serve(settings):
        await publish(redis, settings, envelope("product.renamed", {"id": str(uuid.uuid4())}))
        await eventually(lambda: drained(redis, settings))
    assert await redis.xlen(f"{settings.events_stream}.dead") == 0
    assert await version(redis, settings) == 1  # only the bump of the listener's start


async def test_events_published_while_stopped_are_applied_after_restart(
    serve: Serve, settings: CatalogSettings, redis: Redis
) -> None:
    items = [product(f"Lamp {n}", brand="Lumo", category="Lighting") for n in range(20)]
    async with serve(settings) as client:
        await publish(redis, settings, envelope("product.upserted", items[0]))
        await eventually(lambda: _contains(client, "lamp", "Lamp 0"))
    # The service is down: inventory keeps changing.
    await publish(redis, settings, *(envelope("product.upserted", i) for i in items[1:]))
    await publish(
        redis,
        settings,
        envelope("product.deleted", {"id": items[0]["id"], "sku": items[0]["sku"]}),
    )
    async with serve(settings) as client:
        await eventually(lambda: drained(redis, settings))

        async def caught_up() -> bool:
            # The whole set, not the count: on the way there the index can hold "Lamp 0"
            # and 18 of the new ones, 19 too (writes show in search after a refresh, in
            # any order).
            response = await client.get(
                "/api/v1/products/search", params={"brand": "lumo", "size": 100}
            )
            names = sorted(i["name"] for i in response.json()["items"])
            return names == sorted(i["name"] for i in items[1:])

        await eventually(caught_up)
        response = await client.get(
            "/api/v1/products/search", params={"brand": "lumo", "size": 100}
        )
    body = response.json()
    assert body["total"] == 19
    assert sorted(i["name"] for i in body["items"]) == sorted(i["name"] for i in items[1:])


async def test_cached_answers_change_with_the_catalogue(
    serve: Serve, settings: CatalogSettings, redis: Redis
) -> None:
    item = product("Espresso Machine", price=20_000, version=1)
    async with serve(settings) as client:
        await publish(redis, settings, envelope("product.upserted", item))
        await eventually(lambda: _contains(client, "espresso", "Espresso Machine"))
        first = await client.get("/api/v1/products/search", params={"q": "espresso"})
        again = await client.get("/api/v1/products/search", params={"q": "espresso"})
        assert first.json() == again.json()
        cheaper = {**item, "price": 15_000, "version": 2}
        await publish(redis, settings, envelope("product.upserted", cheaper))

        async def repriced() -> bool:
            response = await client.get("/api/v1/products/search", params={"q": "espresso"})
            return bool(response.json()["items"][0]["price"] == 15_000)

        await eventually(repriced)


async def test_a_burst_of_stock_changes_is_written_once_per_batch(
    serve: Serve, settings: CatalogSettings, redis: Redis, es: AsyncElasticsearch
) -> None:
    # A hot product sells many times a second: each stock.changed carries its whole
    # stock, so a batch writes only the newest and acknowledges the rest unwritten.
    item = product("Popular Mug", sku="MUG-HOT", available=100)
    stock = {"sku": "MUG-HOT", "product_id": item["id"], "on_hand": 100}
    async with serve(settings) as client:
        await publish(redis, settings, envelope("product.upserted", item))
        await eventually(lambda: _contains(client, "popular mug", "Popular Mug"))
    writes_before = (await es.get(index=settings.index_alias, id=item["id"]))["_version"]
    # Published while the catalog is down, so they arrive in one batch (batch size 100),
    # newest first to show that the version decides, not the order.
    changes = [
        envelope(
            "stock.changed",
            {**stock, "reserved": n, "available": 100 - n, "version": n + 1},
        )
        for n in range(60, 0, -1)
    ]
    await publish(redis, settings, *changes)
    async with serve(settings):
        await eventually(lambda: drained(redis, settings))
    current = await es.get(index=settings.index_alias, id=item["id"])
    assert (current["_source"]["available"], current["_source"]["stock_version"]) == (40, 61)
    assert current["_version"] == writes_before + 1


async def test_changes_arriving_one_by_one_are_gathered_until_the_flush(
    serve: Serve, settings: CatalogSettings, redis: Redis, es: AsyncElasticsearch
) -> None:
    # Under a reservation load the changes of a hot product arrive one at a time, not
    # in one batch. Nothing written before the next flush would be searchable sooner,
    # so while a flush is pending the listener lets them gather and writes the newest
    # once, instead of once per entry read.
    paced = settings.model_copy(update={"events_flush_ms": 2_000})
    item = product("Busy Kettle", sku="KETTLE-HOT", available=100)
    stock = {"sku": "KETTLE-HOT", "product_id": item["id"], "on_hand": 100}

    def change(n: int) -> EventEnvelope:
        return envelope(
            "stock.changed", {**stock, "reserved": n, "available": 100 - n, "version": n + 1}
        )

    async with serve(paced) as client:
        await publish(redis, paced, envelope("product.upserted", item))
        await eventually(lambda: _contains(client, "busy kettle", "Busy Kettle"))
        writes_before = (await es.get(index=paced.index_alias, id=item["id"]))["_version"]
        for n in range(1, 21):
            await publish(redis, paced, change(n))
            await asyncio.sleep(0.005)

        async def sold_20() -> bool:
            response = await client.get(f"/api/v1/products/{item['id']}")
            return bool(response.json()["available"] == 80)

        await eventually(sold_20)
        await eventually(lambda: drained(redis, paced))
    current = await es.get(index=paced.index_alias, id=item["id"])
    assert (current["_source"]["available"], current["_source"]["stock_version"]) == (80, 21)
    # The first change is written at once (the flush was not due), the other 19 as one
    # gathered batch: 2 writes where reading them as they came made up to 20.
    assert current["_version"] - writes_before <= 2


async def test_remembered_writes_fall_back_to_reading_when_someone_else_wrote(
    settings: CatalogSettings, es: AsyncElasticsearch, empty_index: str
) -> None:
    # A listener skips the read before writing a document it wrote itself; a write by
    # another replica in between must turn that into a conflict and a fresh read, never
    # into a write merged onto the stale copy.
    remembered = repository.LastWrites()
    alias = [settings.index_alias]
    item = product("Desk Lamp", sku="LAMP-9", stock_version=1)
    stock = {"sku": "LAMP-9", "product_id": item["id"], "on_hand": 10, "reserved": 0}

    async def our_stock(**changes: int) -> repository.Outcome:
        data = StockData.model_validate({**stock, **changes})
        return await repository.apply_change(es, alias, data, last_writes=remembered)

    upserted = await repository.apply_change(
        es, alias, ProductData.model_validate(item), last_writes=remembered
    )
    assert upserted == repository.Outcome.APPLIED
    assert await our_stock(available=10, version=2) == repository.Outcome.APPLIED
    # Another replica renames it (no shared memory with ours).
    renamed = {**item, "name": "Desk Lamp Pro", "version": 2}
    await repository.apply_change(es, alias, ProductData.model_validate(renamed))
    writes_before = (await es.get(index=settings.index_alias, id=item["id"]))["_version"]

    assert await our_stock(reserved=3, available=7, version=3) == repository.Outcome.APPLIED

    current = await es.get(index=settings.index_alias, id=item["id"])
    source = current["_source"]
    assert (source["name"], source["version"]) == ("Desk Lamp Pro", 2)
    assert (source["available"], source["stock_version"]) == (7, 3)
    assert current["_version"] == writes_before + 1  # the stale attempt wrote nothing
    # A stale event decided on the remembered copy is still refused.
    assert await our_stock(available=10, version=2) == repository.Outcome.STALE


async def test_writes_acknowledged_but_never_refreshed_are_searchable_after_a_restart(
    serve: Serve, settings: CatalogSettings, es: AsyncElasticsearch, empty_index: str
) -> None:
    """The index refreshes only when the listener says so: a listener that wrote and
    stopped before its refresh leaves the write unsearchable until the next one starts."""
    item = product("Stray Lantern", brand="Lumo", category="Lighting")
    async with serve(settings.model_copy(update={"listener_enabled": False})) as client:
        # What a listener writes, then stops before its flush.
        await es.index(
            index=settings.index_alias,
            id=item["id"],
            document=product_document(ProductData.model_validate(item)),
        )
        await asyncio.sleep(1.5)  # longer than any scheduled refresh would have waited
        assert await search_names(client, q="lantern") == []

    async with serve(settings) as client:
        await eventually(lambda: _contains(client, "lantern", "Stray Lantern"))


async def test_the_index_takes_the_refresh_interval_the_settings_ask_for_at_start(
    serve: Serve, settings: CatalogSettings, es: AsyncElasticsearch
) -> None:
    """An index an older release made with Elasticsearch's periodic refresh loses it
    when the service starts (and gets it back if the settings ask for it): no reindex."""
    periodic = settings.model_copy(update={"index_refresh_interval": "1s"})

    async def interval() -> str:
        (name,) = await es.indices.get_alias(name=settings.index_alias)
        found = await es.indices.get_settings(index=name, name="index.refresh_interval")
        return str(found[name]["settings"]["index"]["refresh_interval"])

    async with serve(periodic.model_copy(update={"listener_enabled": False})):
        assert await interval() == "1s"
    async with serve(settings.model_copy(update={"listener_enabled": False})):
        assert await interval() == "-1"
    assert settings.index_refresh_interval == "-1"  # the default
