"""The catalog service on real Elasticsearch and Redis.

Every test (or test module, for read-only data) gets its own alias ``t<hex>-products``
and therefore its own indices, deleted afterwards; Redis is emptied before each test
by the stack plugin, and each test uses its own event stream.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from elasticsearch import AsyncElasticsearch
from fastapi import FastAPI
from redis.asyncio import Redis

from catalog_service import repository
from catalog_service.app import create_app
from catalog_service.clients.search_index import create_index
from catalog_service.events import ProductData
from catalog_service.settings import CatalogSettings
from catalog_service.state import CatalogState
from storefront_kit.events import EventEnvelope
from storefront_kit.redis import create_redis
from storefront_kit.settings import PlatformSettings
from storefront_kit.state import service_state
from storefront_stack.serving import in_process

T0 = datetime(2026, 1, 1, tzinfo=UTC)

Serve = Callable[[CatalogSettings], AbstractAsyncContextManager[httpx.AsyncClient]]


def product(
    name: str,
    *,
    brand: str = "Acme",
    category: str = "Gadgets",
    price: int = 1000,
    available: int = 5,
    active: bool = True,
    version: int = 1,
    created_days: int = 0,
    product_id: uuid.UUID | None = None,
    sku: str | None = None,
    description: str = "",
    stock_version: int | None = None,
) -> dict[str, Any]:
    """A product as inventory sends it (``product.upserted`` data / export item)."""
    created = T0 + timedelta(days=created_days)
    stock: dict[str, Any] = {"on_hand": available + 1, "reserved": 1, "available": available}
    if stock_version is not None:
        stock["version"] = stock_version
    return {
        "id": str(product_id or uuid.uuid4()),
        "sku": sku or f"SKU-{uuid.uuid4().hex[:10].upper()}",
        "name": name,
        "description": description,
        "brand": brand,
        "category": category,
        "attributes": {"colour": "black"},
        "price": price,
        "currency": "EUR",
        "images": [f"https://img.example/{name.replace(' ', '-').lower()}.jpg"],
        "active": active,
        "created_at": created.isoformat(),
        "updated_at": created.isoformat(),
        "version": version,
        "stock": stock,
    }


def envelope(
    type_: str, data: dict[str, Any], *, event_id: uuid.UUID | None = None
) -> EventEnvelope:
    """An inventory event as the outbox relay publishes it."""
    return EventEnvelope(
        id=event_id or uuid.uuid4(),
        type=type_,
        occurred_at=datetime.now(UTC),
        source="inventory",
        request_id="test-request-0001",
        data=data,
    )


def make_settings(
    elasticsearch_url: str, redis_url: str, alias: str, **overrides: Any
) -> CatalogSettings:
    values: dict[str, Any] = {
        "elasticsearch_url": elasticsearch_url,
        "redis_url": redis_url,
        "index_alias": alias,
        "events_stream": f"test.{alias}.events",
        "instance_id": "catalog-test-1",
        "events_block_ms": 50,
        # The test machine is shared and often loaded: a slow answer is not the point here.
        "elasticsearch_timeout_s": 10.0,
        # Likewise for the cache's deadline: a slow Redis call here is load, not an outage
        # (the breaker tests set their own).
        "cache_timeout_ms": 5_000,
        # And for the dependency watch: only seconds of silence mean an outage here (the
        # watch tests set their own).
        "watch_interval_ms": 1_000,
        "watch_timeout_ms": 1_000,
        "watch_misses": 3,
        "platform": PlatformSettings(log_json=False, log_level="WARNING"),
    }
    values.update(overrides)
    return CatalogSettings(**values)


def search(client: httpx.AsyncClient, q: str) -> Awaitable[httpx.Response]:
    """One product search for ``q``."""
    return client.get("/api/v1/products/search", params={"q": q})


@asynccontextmanager
async def serve_app(settings: CatalogSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with in_process(app, "http://catalog", request_timeout_s=5) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


def app_of(client: httpx.AsyncClient) -> FastAPI:
    app: FastAPI = client.app  # type: ignore[attr-defined]
    return app


def state_of(client: httpx.AsyncClient) -> CatalogState:
    """What the running app's lifespan built (its typed state)."""
    return service_state(app_of(client), CatalogState)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within_s: float = 5.0, every_s: float = 0.02
) -> float:
    """Poll ``check`` until true; returns the seconds it took (fails after ``within_s``).

    A deadline, not a speed assertion: the machine running the tests may be loaded.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        if await check():
            return loop.time() - start
        if loop.time() - start > within_s:
            raise AssertionError(f"not true within {within_s}s")
        await asyncio.sleep(every_s)


async def index_products(
    es: AsyncElasticsearch, settings: CatalogSettings, products: Iterable[dict[str, Any]]
) -> None:
    """Write products straight into the alias (what the listener would do)."""
    for item in products:
        await repository.apply_change(
            es, [settings.index_alias], ProductData.model_validate(item), refresh=False
        )
    await es.indices.refresh(index=settings.index_alias)


def new_alias() -> str:
    return f"t{uuid.uuid4().hex[:10]}-products"


async def drop_alias_indices(es: AsyncElasticsearch, alias: str) -> None:
    await es.options(ignore_status=404).indices.delete(index=f"{alias}-*", expand_wildcards="all")


@pytest.fixture
async def es(elasticsearch_url: str) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(elasticsearch_url, request_timeout=10)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_url, socket_timeout=None)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def alias(es: AsyncElasticsearch) -> AsyncIterator[str]:
    """A fresh alias for one test; its indices are deleted afterwards."""
    name = new_alias()
    yield name
    await drop_alias_indices(es, name)


@pytest.fixture
def settings(elasticsearch_url: str, redis_url: str, alias: str) -> CatalogSettings:
    return make_settings(elasticsearch_url, redis_url, alias)


@pytest.fixture
async def empty_index(es: AsyncElasticsearch, settings: CatalogSettings) -> str:
    """The test's alias over a fresh index."""
    name = f"{settings.index_alias}-000"
    await create_index(es, name, settings, with_alias=True)
    return name


@pytest.fixture
def serve() -> Serve:
    return serve_app


@dataclass
class Silent:
    """A TCP server that reads everything and never answers: what a frozen (SIGSTOPped)
    or partitioned server looks like to a client."""

    url: str
    received: list[bytes] = field(default_factory=list)

    def count(self, needle: bytes) -> int:
        return b"".join(self.received).count(needle)


@pytest.fixture
async def silent() -> AsyncIterator[Silent]:
    writers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while data := await reader.read(65536):
            server_state.received.append(data)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server_state = Silent(url=f"127.0.0.1:{port}")
    try:
        yield server_state
    finally:
        for writer in writers:
            writer.close()
        server.close()


#: Catalog settings from keyword overrides (``silent_elasticsearch_settings``).
SettingsWith = Callable[..., CatalogSettings]


@pytest.fixture
def silent_elasticsearch_settings(silent: Silent, redis_url: str, alias: str) -> SettingsWith:
    """Settings (the keyword overrides on top) whose Elasticsearch is the ``silent``
    server, asked once per search (no retries) and by nothing else (no listener)."""

    def settings_with(**overrides: Any) -> CatalogSettings:
        return make_settings(
            f"http://{silent.url}",
            redis_url,
            alias,
            listener_enabled=False,
            elasticsearch_max_retries=0,
            **overrides,
        )

    return settings_with


@pytest.fixture
async def indexed(
    es: AsyncElasticsearch, settings: CatalogSettings, empty_index: str
) -> CatalogSettings:
    await index_products(es, settings, [product("Google Pixel 8", brand="Google", price=69_900)])
    return settings.model_copy(update={"listener_enabled": False})
