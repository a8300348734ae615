"""Full reindex from a real inventory service: the index ends equal to PostgreSQL.

Inventory runs under uvicorn in a thread on its own migrated database (module scope),
with test keys: admin requests carry a user token signed by the test user key, and
catalog's export calls a service token signed by the test service key, the same key
the ``reindex`` command gets through with catalog's own ``CATALOG_SERVICE_TOKEN_KEY``.
"""

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from catalog_service.service.cache import catalogue_version_key
from catalog_service.service.reindex import ReindexRunning, reindex, reindex_from_inventory
from catalog_service.settings import CatalogSettings
from inventory_service.app import create_app as create_inventory_app
from inventory_service.settings import InventorySettings
from jwt_core_lib import (
    ServiceTokenAuth,
    ServiceTokenMinter,
    SigningKey,
    StaticKeySource,
    TokenIssuer,
    TokenVerifier,
)
from storefront_stack.keys import ServiceKeys
from storefront_stack.processes import free_port
from storefront_stack.pytest_plugin import create_test_database
from storefront_stack.serving import local_server, start_in_thread

from .conftest import Serve, eventually, product

USER_ISSUER = "storefront-auth"


@dataclass(frozen=True)
class Inventory:
    url: str
    database_url: str  # plain asyncpg DSN
    user_key: SigningKey
    services: ServiceKeys

    def admin_headers(self) -> dict[str, str]:
        token = TokenIssuer(signing_key=self.user_key, issuer=USER_ISSUER).issue(
            subject="catalog-test-admin",
            audience="storefront",
            ttl=timedelta(minutes=10),
            roles=("admin",),
        )
        return {"Authorization": f"Bearer {token}"}

    def export_auth(self) -> httpx.Auth:
        minter = ServiceTokenMinter(
            issuer=TokenIssuer(signing_key=self.services["catalog"], issuer="catalog"),
            service_name="catalog",
        )
        return ServiceTokenAuth(minter, "inventory")


@pytest.fixture(scope="module")
def inventory(postgres_server_url: str, redis_server_url: str) -> Iterator[Inventory]:
    user_key, services = SigningKey.generate(), ServiceKeys.generate()
    database_url = create_test_database(postgres_server_url, "inventory_service")
    app = create_inventory_app(
        InventorySettings(
            database_url=database_url, redis_url=redis_server_url, outbox_poll_interval_s=0.1
        )
    )
    app.state.security = services.security(
        "inventory",
        user_verifier=TokenVerifier(
            key_source=StaticKeySource([user_key]), issuer=USER_ISSUER, audience="storefront"
        ),
    )
    port = free_port()
    server = local_server(app, port, lifespan="on")
    thread = start_in_thread(server, "inventory")
    yield Inventory(
        url=f"http://127.0.0.1:{port}",
        database_url=database_url.replace("postgresql+asyncpg://", "postgresql://", 1),
        user_key=user_key,
        services=services,
    )
    server.should_exit = True
    thread.join(15)


@pytest.fixture
async def admin(inventory: Inventory) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=inventory.url, headers=inventory.admin_headers(), timeout=30
    ) as client:
        yield client


async def create_products(admin: httpx.AsyncClient, count: int, *, tag: str) -> list[Any]:
    """``count`` products through the admin API (each one a ``product.upserted`` event)."""
    created = []
    for n in range(count):
        body = product(f"Reindex {tag} Lamp {n}", brand="Lumo", category="Lighting")
        request = {
            key: body[key]
            for key in ("name", "description", "brand", "category", "price", "currency")
        }
        request |= {"sku": f"RX-{tag}-{n:04d}", "price": 1_000 + n, "initial_stock": n % 7}
        response = await admin.post("/api/v1/admin/products", json=request)
        assert response.status_code == 201, response.text
        created.append(response.json())
    return created


async def change_products(admin: httpx.AsyncClient, products: Sequence[Mapping[str, Any]]) -> None:
    """Prices, stock, deactivation and deletion: the drift a reindex must repair."""
    for n, item in enumerate(products):
        path = f"/api/v1/admin/products/{item['id']}"
        if n % 5 == 0:
            response = await admin.delete(path, headers={"If-Match": f'"{item["version"]}"'})
            assert response.status_code == 204, response.text
        elif n % 5 == 1:
            patch = {"price": item["price"] * 2, "name": f"{item['name']} Deluxe"}
            response = await admin.patch(
                path, json=patch, headers={"If-Match": f'"{item["version"]}"'}
            )
            assert response.status_code == 200, response.text
            assert response.json()["price"] == item["price"] * 2
        elif n % 5 == 2:
            response = await admin.post(
                f"{path}/stock", json={"delta": 40 + n, "reason": "delivery"}
            )
            assert response.status_code == 200, response.text
        elif n % 5 == 3:
            response = await admin.patch(
                path, json={"active": False}, headers={"If-Match": f'"{item["version"]}"'}
            )
            assert response.status_code == 200, response.text


async def postgres_state(inventory: Inventory) -> dict[str, tuple[Any, ...]]:
    """Every live product in inventory's database: id -> what the index must hold."""
    connection = await asyncpg.connect(inventory.database_url)
    try:
        rows = await connection.fetch(
            "SELECT p.id, p.sku, p.name, p.price, p.active, p.version,"
            " s.on_hand, s.reserved FROM product p JOIN stock s ON s.product_id = p.id"
            " WHERE p.deleted_at IS NULL"
        )
    finally:
        await connection.close()
    return {
        str(r["id"]): (
            r["sku"],
            r["name"],
            r["price"],
            r["active"],
            r["version"],
            r["on_hand"],
            r["reserved"],
            r["on_hand"] - r["reserved"],
        )
        for r in rows
    }


async def index_state(es: AsyncElasticsearch, alias: str) -> dict[str, tuple[Any, ...]]:
    """Every non-tombstone document behind ``alias``, in the same shape."""
    await es.indices.refresh(index=alias)
    response = await es.search(
        index=alias, query={"term": {"deleted": False}}, size=5_000, track_total_hits=True
    )
    assert response["hits"]["total"]["value"] == len(response["hits"]["hits"])
    return {
        hit["_id"]: (
            s["sku"],
            s["name"],
            s["price"],
            s["active"],
            s["version"],
            s["on_hand"],
            s["reserved"],
            s["available"],
        )
        for hit in response["hits"]["hits"]
        for s in [hit["_source"]]
    }


async def indices_of(es: AsyncElasticsearch, alias: str) -> list[str]:
    response = await es.indices.get(index=f"{alias}-*")
    return sorted(response.body)


async def search(client: httpx.AsyncClient, **params: Any) -> Any:
    response = await client.get("/api/v1/products/search", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_reindex_command_repairs_drift_while_the_listener_was_off(
    serve: Serve,
    settings: CatalogSettings,
    inventory: Inventory,
    admin: httpx.AsyncClient,
    es: AsyncElasticsearch,
    redis: Redis,
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    listening = settings.model_copy(update={"events_stream": "inventory.events"})
    async with serve(listening) as client:
        products = await create_products(admin, 30, tag=tag)

        async def all_listed() -> bool:
            body = await search(client, q=f"reindex {tag.lower()}", size=100)
            return bool(body["total"] == 30)

        await eventually(all_listed, within_s=20)
    (old_index,) = await indices_of(es, settings.index_alias)

    # The listener is off from here on: nothing of this reaches the index by events.
    await change_products(admin, products)
    await create_products(admin, 5, tag=f"{tag}N")
    assert await index_state(es, settings.index_alias) != await postgres_state(inventory)

    quiet = settings.model_copy(update={"listener_enabled": False})
    async with serve(quiet) as client:
        before = await search(client, brand="lumo", size=100, sort="price_asc")
        assert before["total"] == 30  # the stale view, now cached
        version_before = int(await redis.get(catalogue_version_key(settings.redis_prefix)) or 0)

        env = {
            "PATH": os.environ.get("PATH", ""),
            "CATALOG_ELASTICSEARCH_URL": settings.elasticsearch_url,
            "CATALOG_REDIS_URL": settings.redis_url,
            "CATALOG_INDEX_ALIAS": settings.index_alias,
            "CATALOG_INVENTORY_URL": inventory.url,
            "CATALOG_REINDEX_PAGE_SIZE": "7",
            # Catalog's own key, as make run hands it (inventory knows its public half).
            **inventory.services.env("catalog"),
            "STOREFRONT_LOG_LEVEL": "WARNING",
            "COLUMNS": "120",
        }
        command = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "catalog_service",
            "reindex",
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(command.communicate(), timeout=120)
        assert command.returncode == 0, err.decode()
        expected = await postgres_state(inventory)
        assert f"reindexed {len(expected)} products" in out.decode()
        assert f"dropped: {old_index}" in out.decode()
        assert "reindex" in err.decode()  # the progress bar

        (new_index,) = await indices_of(es, settings.index_alias)
        assert new_index != old_index
        assert not await es.indices.exists(index=old_index)
        aliased = await es.indices.get_alias(name=settings.index_alias)
        assert list(aliased.body) == [new_index]
        assert await index_state(es, settings.index_alias) == expected
        assert await redis.get(catalogue_version_key(settings.redis_prefix)) == str(
            version_before + 1
        )

        # The cached answer went with the old catalogue version.
        after = await search(client, brand="lumo", size=100, sort="price_asc")
        searchable = sorted((row[2], pid) for pid, row in expected.items() if row[3])
        assert [(i["price"], i["id"]) for i in after["items"]] == searchable
        ours = [pid for pid, row in expected.items() if row[3] and row[0].startswith(f"RX-{tag}")]
        assert len(ours) == 30 - 6 - 6 + 5  # deleted and deactivated ones are gone


async def test_search_never_fails_while_a_reindex_runs(
    serve: Serve,
    settings: CatalogSettings,
    inventory: Inventory,
    admin: httpx.AsyncClient,
    es: AsyncElasticsearch,
    redis: Redis,
) -> None:
    await create_products(admin, 40, tag=uuid.uuid4().hex[:6].upper())
    settings = settings.model_copy(
        update={
            "listener_enabled": False,
            "cache_enabled": False,
            "reindex_page_size": 5,
            "inventory_url": inventory.url,
        }
    )
    expected = await postgres_state(inventory)
    searchable = sum(1 for row in expected.values() if row[3])
    async with (
        serve(settings) as client,
        httpx.AsyncClient(timeout=30) as http,
    ):
        first = await reindex_from_inventory(
            es=es, redis=redis, settings=settings, http=http, auth=inventory.export_auth()
        )
        assert first.indexed == len(expected)
        answers: list[tuple[int, Any]] = []
        done = asyncio.Event()

        async def keep_searching() -> None:
            while not done.is_set():
                response = await client.get(
                    "/api/v1/products/search", params={"q": "lamp", "size": 1}
                )
                answers.append((response.status_code, response.json()))

        searcher = asyncio.create_task(keep_searching())
        pages: list[int] = []
        try:
            second = await reindex_from_inventory(
                es=es,
                redis=redis,
                settings=settings,
                http=http,
                auth=inventory.export_auth(),
                on_page=pages.append,
            )
            # A few more searches after the swap, on the new index.
            seen = len(answers)
            await eventually(lambda: _more(answers, seen + 5), within_s=30)
        finally:
            done.set()
            await searcher
    assert second.previous == [first.index]
    assert sum(pages) == len(expected)
    assert len(pages) > 5
    assert await indices_of(es, settings.index_alias) == [second.index]
    assert len(answers) > 10
    assert {status for status, _ in answers} == {200}
    # Every answer is the full catalogue: the old index or the new one, never an empty one.
    assert {body["total"] for _, body in answers} == {searchable}


async def _more(answers: list[tuple[int, Any]], count: int) -> bool:
    return len(answers) >= count


async def test_a_second_reindex_is_refused_while_one_runs(
    settings: CatalogSettings, es: AsyncElasticsearch, redis: Redis
) -> None:
    release = asyncio.Event()

    async def slow_pages() -> AsyncIterator[list[dict[str, Any]]]:
        yield [product("Held Lamp")]
        await release.wait()

    running = asyncio.create_task(
        reindex(es=es, redis=redis, settings=settings, pages=slow_pages())
    )
    await eventually(lambda: _exists(redis, f"{settings.redis_prefix}:reindex:target"), within_s=10)
    with pytest.raises(ReindexRunning) as refused:
        await reindex(es=es, redis=redis, settings=settings, pages=slow_pages())
    assert refused.value.status_code == 409
    release.set()
    report = await running
    assert report.indexed == 1
    assert await indices_of(es, settings.index_alias) == [report.index]


async def _exists(redis: Redis, key: str) -> bool:
    return bool(await redis.exists(key))


async def test_a_failed_reindex_drops_its_index_and_leaves_the_alias(
    serve: Serve, settings: CatalogSettings, es: AsyncElasticsearch, redis: Redis
) -> None:
    async def good_pages() -> AsyncIterator[list[dict[str, Any]]]:
        yield [product("Kept Lamp")]

    first = await reindex(es=es, redis=redis, settings=settings, pages=good_pages())

    async def broken_pages() -> AsyncIterator[list[dict[str, Any]]]:
        yield [product("Half Lamp")]
        raise httpx.ConnectError("inventory went away")

    with pytest.raises(httpx.ConnectError):
        await reindex(es=es, redis=redis, settings=settings, pages=broken_pages())
    assert await indices_of(es, settings.index_alias) == [first.index]
    assert not await redis.exists(f"{settings.redis_prefix}:reindex:target")
    assert not await redis.exists(f"{settings.redis_prefix}:reindex:lock")
    async with serve(settings.model_copy(update={"listener_enabled": False})) as client:
        body = await search(client, q="lamp")
    assert [item["name"] for item in body["items"]] == ["Kept Lamp"]
