"""The checkout saga against the real inventory service and the real provider sandboxes.

Inventory, payments and shipping run under uvicorn on free ports in threads (one each
per session, sandboxes reset per test); the orders service runs in process on its own
migrated database, with settings each test may tune. One service signing key is shared
by orders (minting) and inventory (verifying); user tokens are signed by a test key.
"""

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from redis.asyncio import Redis

from inventory_service.app import create_app as create_inventory_app
from inventory_service.settings import InventorySettings
from jwt_core_lib import (
    SigningKey,
    StaticKeySource,
    TokenIssuer,
    TokenVerifier,
    jwks_document,
)
from orders_service.app import create_app as create_orders_app
from orders_service.settings import OrdersSettings
from storefront_kit.security import ServiceSecurity
from storefront_sandbox.payments import create_app as create_payments_app
from storefront_sandbox.settings import SandboxSettings
from storefront_sandbox.shipping import create_app as create_shipping_app
from storefront_stack.checks import ok
from storefront_stack.keys import ServiceKeys
from storefront_stack.processes import free_port
from storefront_stack.pytest_plugin import UNHURRIED_REDIS_WATCH, create_test_database
from storefront_stack.serving import in_process, local_server, start_in_thread
from storefront_stack.shop import UK_ADDRESS as ADDRESS

USER_ISSUER = "storefront-auth"
AUDIENCE = "storefront"
PAYMENT = {"method": "card", "token": "tok_visa"}


@dataclass(frozen=True)
class Keys:
    user_key: SigningKey
    services: ServiceKeys

    def security(self, service: str) -> ServiceSecurity:
        return self.services.security(
            service,
            user_verifier=TokenVerifier(
                key_source=StaticKeySource([self.user_key]),
                issuer=USER_ISSUER,
                audience=AUDIENCE,
            ),
        )

    def user(self, subject: str, *roles: str, phone_ref: str | None = None) -> dict[str, str]:
        token = TokenIssuer(signing_key=self.user_key, issuer=USER_ISSUER).issue(
            subject=subject,
            audience=AUDIENCE,
            ttl=timedelta(minutes=10),
            roles=roles or ("customer",),
            extra={"phone_ref": phone_ref} if phone_ref else None,
        )
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(user_key=SigningKey.generate(), services=ServiceKeys.generate())


@dataclass
class Server:
    url: str
    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def serve_in_thread(app: FastAPI, port: int | None = None) -> Server:
    """Run ``app`` under uvicorn on a free port in a daemon thread (with its lifespan)."""
    port = port or free_port()
    server = local_server(app, port, lifespan="on")  # as served: outlasts the clients' expiry
    thread = start_in_thread(server, "server")
    return Server(f"http://127.0.0.1:{port}", app, server, thread)


@pytest.fixture(scope="session")
def inventory_server(
    postgres_server_url: str, redis_server_url: str, keys: Keys
) -> Iterator[Server]:
    database_url = create_test_database(postgres_server_url, "inventory_service")
    settings = InventorySettings(
        database_url=database_url,
        redis_url=redis_server_url,
        db_pool_size=20,
        db_pool_timeout_s=30.0,
        outbox_poll_interval_s=0.2,
    )
    app = create_inventory_app(settings)
    app.state.security = keys.security("inventory")
    server = serve_in_thread(app)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def payments_server() -> Iterator[Server]:
    server = serve_in_thread(create_payments_app(SandboxSettings(timeout_s=5.0)))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shipping_server() -> Iterator[Server]:
    server = serve_in_thread(create_shipping_app(SandboxSettings(timeout_s=5.0)))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def jwks_server(keys: Keys) -> Iterator[Server]:
    """Auth's JWKS with the test user key, for an orders service run as its own process."""
    app = FastAPI()
    document = jwks_document([keys.user_key])

    @app.get("/.well-known/jwks.json")
    async def jwks() -> dict[str, Any]:
        return document

    server = serve_in_thread(app)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def orders_database_url(postgres_server_url: str) -> str:
    return create_test_database(postgres_server_url, "orders_service")


def orders_settings(
    *,
    database_url: str,
    redis_url: str,
    inventory_url: str,
    payments_url: str,
    shipping_url: str,
    **overrides: Any,
) -> OrdersSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "inventory_url": inventory_url,
        "payments_api_url": payments_url,
        "shipping_api_url": shipping_url,
        "payments_timeout_s": 0.5,
        "shipping_timeout_s": 0.5,
        "inventory_timeout_s": 5.0,
        "retry_attempts": 3,
        "retry_backoff_initial_s": 0.02,
        "retry_backoff_max_s": 0.1,
        "breaker_fail_max": 5,
        "breaker_reset_timeout_s": 30.0,
        "checkout_wait_s": 15.0,
        "saga_lease_ttl_s": 5.0,
        "recovery_interval_s": 0.5,
        "compensation_retry_initial_s": 0.2,
        "compensation_retry_max_s": 1.0,
        "outbox_poll_interval_s": 0.05,
        "db_pool_size": 20,
        "db_pool_timeout_s": 30.0,
        **UNHURRIED_REDIS_WATCH,
    }
    values.update(overrides)
    return OrdersSettings(**values)


@dataclass
class Stack:
    """The running services and helpers for the calls the tests make."""

    keys: Keys
    orders_app: FastAPI
    orders: httpx.AsyncClient
    inventory: httpx.AsyncClient
    payments: httpx.AsyncClient
    shipping: httpx.AsyncClient
    redis: Redis
    admin: dict[str, str] = field(default_factory=dict)

    def user(
        self, subject: str = "user-1", *roles: str, phone_ref: str | None = None
    ) -> dict[str, str]:
        return self.keys.user(subject, *roles, phone_ref=phone_ref)

    async def product(self, *, on_hand: int = 10, price: int = 1250) -> dict[str, Any]:
        body = {
            "sku": f"SKU-{uuid.uuid4().hex[:12].upper()}",
            "name": "Saga test product",
            "brand": "Acme",
            "category": "tests",
            "price": price,
            "currency": "EUR",
            "initial_stock": on_hand,
        }
        response = await self.inventory.post(
            "/api/v1/admin/products", json=body, headers=self.admin
        )
        return ok(response, 201)

    async def stock(self, product: dict[str, Any]) -> dict[str, int]:
        response = await self.inventory.get(
            f"/api/v1/admin/products/{product['id']}", headers=self.admin
        )
        return ok(response)["stock"]

    async def checkout(
        self,
        items: list[dict[str, Any]],
        *,
        key: str | None = None,
        user: str = "user-1",
        **body: Any,
    ) -> httpx.Response:
        payload = {"items": items, "shipping_address": ADDRESS, "payment": PAYMENT, **body}
        return await self.orders.post(
            "/api/v1/orders",
            json=payload,
            headers={**self.user(user), "Idempotency-Key": key or uuid.uuid4().hex},
        )

    async def ledger(self, order_id: str) -> list[dict[str, Any]]:
        response = await self.payments.get("/ledger", params={"order_id": order_id})
        entries: list[dict[str, Any]] = response.json()["entries"]
        return entries

    async def payment_faults(self, **config: Any) -> dict[str, Any]:
        return ok(await self.payments.post("/faults", json=config))

    async def shipping_faults(self, **config: Any) -> dict[str, Any]:
        return ok(await self.shipping.post("/faults", json=config))

    async def shipments(self, order_id: str) -> list[dict[str, Any]]:
        response = await self.shipping.get("/shipments", params={"order_id": order_id})
        result: list[dict[str, Any]] = response.json()
        return result

    async def admin_order(self, order_id: str) -> dict[str, Any]:
        response = await self.orders.get(f"/api/v1/admin/orders/{order_id}", headers=self.admin)
        return ok(response)

    async def wait_settled(self, order_id: str, *, timeout: float = 20.0) -> dict[str, Any]:
        """Poll until the order's saga is over."""
        deadline = time.monotonic() + timeout
        while True:
            order = await self.admin_order(order_id)
            if order["status"] not in (
                "PENDING",
                "RESERVED",
                "PAID",
                "SHIPMENT_CREATED",
                "COMPENSATING",
            ):
                return order
            if time.monotonic() > deadline:
                raise AssertionError(f"order {order_id} still {order['status']}")
            await asyncio.sleep(0.05)

    async def events(self, order_id: str) -> list[dict[str, Any]]:
        """Envelopes on ``orders.events`` about one order, oldest first."""
        entries = await self.redis.xrange("orders.events")
        envelopes = [orjson.loads(fields["envelope"]) for _, fields in entries]
        return [e for e in envelopes if e["data"].get("order_id") == order_id]

    async def wait_events(
        self, order_id: str, *types: str, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            events = await self.events(order_id)
            if set(types) <= {e["type"] for e in events}:
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"missing events {types}: {[e['type'] for e in events]}")
            await asyncio.sleep(0.05)


@pytest.fixture
async def stack_factory(
    keys: Keys,
    redis_url: str,
    orders_database_url: str,
    inventory_server: Server,
    payments_server: Server,
    shipping_server: Server,
) -> Callable[..., Any]:
    """``async with stack_factory(**orders_settings) as stack``: orders with tuned settings."""
    async with httpx.AsyncClient(base_url=payments_server.url, timeout=30) as payments:
        await payments.post("/reset")
    async with httpx.AsyncClient(base_url=shipping_server.url, timeout=30) as shipping:
        await shipping.post("/reset")

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Stack]:
        settings = orders_settings(
            database_url=orders_database_url,
            redis_url=overrides.pop("redis_url", redis_url),
            inventory_url=inventory_server.url,
            payments_url=payments_server.url,
            shipping_url=shipping_server.url,
            **overrides,
        )
        app = create_orders_app(settings)
        app.state.security = keys.security("orders")
        redis = Redis.from_url(redis_url, decode_responses=True)
        async with (
            in_process(app, "http://orders", request_timeout_s=60) as orders,
            httpx.AsyncClient(base_url=inventory_server.url, timeout=30) as inventory,
            httpx.AsyncClient(base_url=payments_server.url, timeout=30) as payments,
            httpx.AsyncClient(base_url=shipping_server.url, timeout=30) as shipping,
        ):
            try:
                yield Stack(
                    keys=keys,
                    orders_app=app,
                    orders=orders,
                    inventory=inventory,
                    payments=payments,
                    shipping=shipping,
                    redis=redis,
                    admin=keys.user("admin-1", "admin"),
                )
            finally:
                await redis.aclose()

    return start


@pytest.fixture
async def stack(stack_factory: Callable[..., Any]) -> AsyncIterator[Stack]:
    async with stack_factory() as running:
        yield running
