"""The inventory service on real PostgreSQL and Redis, with test signing keys.

Each test module gets its own migrated database; tests inside a module stay apart
by using fresh skus and order ids.
"""

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import text

from inventory_service.app import create_app
from inventory_service.settings import InventorySettings
from inventory_service.state import InventoryState
from storefront_stack.checks import rows
from storefront_stack.keys import KeyRing
from storefront_stack.logins import bearer as bearer
from storefront_stack.pytest_plugin import database_fixture
from storefront_stack.serving import RunningService, in_process

#: Auth's user-token key and every service's service-token key.
Keys = KeyRing


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(service="inventory", caller="orders", default_subject="user-1")


database_url = database_fixture("inventory_service")


def new_sku(prefix: str = "SKU") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12].upper()}"


@dataclass
class Inventory(RunningService[InventoryState]):
    """A running inventory app and a client with helpers for the common calls."""

    state_type = InventoryState
    app: FastAPI
    client: httpx.AsyncClient
    keys: Keys
    admin: dict[str, str] = field(default_factory=dict)
    moderator: dict[str, str] = field(default_factory=dict)
    service: dict[str, str] = field(default_factory=dict)  # orders, the saga's caller
    catalog: dict[str, str] = field(default_factory=dict)  # catalog, the export's caller

    @property
    def redis(self) -> Redis:
        return self.state.redis

    async def create_product(
        self, *, sku: str | None = None, on_hand: int = 10, **fields: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "sku": sku or new_sku(),
            "name": "Test product",
            "brand": "Acme",
            "category": "tests",
            "price": 1250,
            "currency": "EUR",
            "initial_stock": on_hand,
        }
        body.update(fields)
        response = await self.client.post("/api/v1/admin/products", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def reserve(
        self,
        items: list[dict[str, Any]],
        *,
        order_id: uuid.UUID | str | None = None,
        ttl_s: int | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {"order_id": str(order_id or uuid.uuid4()), "items": items}
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        return await self.client.post(
            "/internal/inventory/reserve", json=body, headers=self.service
        )

    async def adjust_stock(
        self, product: Mapping[str, Any], delta: int, reason: str
    ) -> httpx.Response:
        """``POST /api/v1/admin/products/{id}/stock`` as the admin."""
        return await self.client.post(
            f"/api/v1/admin/products/{product['id']}/stock",
            json={"delta": delta, "reason": reason},
            headers=self.admin,
        )

    async def stock(self, sku: str) -> dict[str, int]:
        """Stock straight from the database (not through the code under test)."""
        [row] = await rows(
            self.engine,
            "SELECT on_hand, reserved, version FROM stock WHERE sku = :sku",
            {"sku": sku},
        )
        return {"on_hand": row.on_hand, "reserved": row.reserved, "version": row.version}

    async def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        async with self.engine.connect() as connection:
            return (await connection.execute(text(sql), dict(params or {}))).scalar()

    async def outbox(self, event_type: str, sku: str) -> list[dict[str, Any]]:
        """Outbox envelopes of one type about one sku, oldest first."""
        staged = await rows(
            self.engine,
            "SELECT envelope FROM outbox_event WHERE event_type = :type"
            " AND envelope->'data'->>'sku' = :sku ORDER BY created_at, id",
            {"type": event_type, "sku": sku},
        )
        return [row.envelope for row in staged]


def settings_for(database_url: str, redis_url: str, **overrides: Any) -> InventorySettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "db_pool_size": 20,
        "db_max_overflow": 10,
        "db_pool_timeout_s": 30.0,
        "outbox_poll_interval_s": 0.05,
        "sweeper_interval_s": 0.2,
    }
    values.update(overrides)
    return InventorySettings(**values)


@asynccontextmanager
async def running(settings: InventorySettings, keys: Keys) -> AsyncIterator[Inventory]:
    app = create_app(settings)
    app.state.security = keys.security()
    async with in_process(app, "http://inventory", request_timeout_s=60) as client:
        yield Inventory(
            app=app,
            client=client,
            keys=keys,
            admin=bearer(keys.user_token("admin", subject="admin-1")),
            moderator=bearer(keys.user_token("moderator", subject="mod-1")),
            service=bearer(keys.service_token("orders")),
            catalog=bearer(keys.service_token("catalog")),
        )


@pytest.fixture
async def inventory(database_url: str, redis_url: str, keys: Keys) -> AsyncIterator[Inventory]:
    async with running(settings_for(database_url, redis_url), keys) as inv:
        yield inv


@pytest.fixture
def start_inventory(database_url: str, keys: Keys) -> Any:
    """``start_inventory(redis_url, **setting_overrides)``: an app with custom settings."""

    def start(redis_url: str, **overrides: Any) -> Any:
        return running(settings_for(database_url, redis_url, **overrides), keys)

    return start


@pytest.fixture
def sku_factory() -> Any:
    return new_sku
