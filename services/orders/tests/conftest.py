"""The orders service on real PostgreSQL and Redis, with test signing keys.

Providers point at a closed port, so a saga started here fails fast at its first step
(inventory unreachable); tests that need settled orders insert them directly.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from jwt_core_lib import (
    SigningKey,
    StaticKeySource,
    TokenIssuer,
    TokenVerifier,
)
from orders_service.app import create_app
from orders_service.models import CustomerOrder
from orders_service.settings import OrdersSettings
from orders_service.state import OrdersState
from storefront_kit.ids import new_id
from storefront_kit.security import ServiceSecurity
from storefront_kit.state import service_state
from storefront_stack.keys import ServiceKeys
from storefront_stack.pytest_plugin import create_test_database

DEAD_URL = "http://127.0.0.1:1"  # nothing listens on port 1
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 Analytical St",
    "city": "London",
    "postal_code": "N1 9GU",
    "country": "GB",
}


@dataclass(frozen=True)
class Keys:
    user_key: SigningKey
    services: ServiceKeys

    def security(self) -> ServiceSecurity:
        return self.services.security(
            "orders",
            user_verifier=TokenVerifier(
                key_source=StaticKeySource([self.user_key]),
                issuer="storefront-auth",
                audience="storefront",
            ),
        )

    def headers(self, subject: str, *roles: str) -> dict[str, str]:
        token = TokenIssuer(signing_key=self.user_key, issuer="storefront-auth").issue(
            subject=subject,
            audience="storefront",
            ttl=timedelta(minutes=5),
            roles=roles or ("customer",),
        )
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(user_key=SigningKey.generate(), services=ServiceKeys.generate())


@pytest.fixture(scope="module")
async def database_url(postgres_server_url: str) -> str:
    return await asyncio.to_thread(create_test_database, postgres_server_url, "orders_service")


def settings_for(database_url: str, redis_url: str, **overrides: Any) -> OrdersSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "inventory_url": DEAD_URL,
        "payments_api_url": DEAD_URL,
        "shipping_api_url": DEAD_URL,
        "retry_attempts": 1,
        "checkout_wait_s": 5.0,
        "recovery_interval_s": 0.2,
        "outbox_poll_interval_s": 0.05,
        # Only seconds of silence mean Redis is down here: on a loaded test machine a
        # slow ping is load, and a checkout must not stop waiting for it (the frozen-Redis
        # test sets its own).
        "redis_watch_interval_ms": 1_000,
        "redis_watch_timeout_ms": 1_000,
        "redis_watch_misses": 3,
    }
    values.update(overrides)
    return OrdersSettings(**values)


@dataclass
class Orders:
    app: FastAPI
    client: httpx.AsyncClient
    keys: Keys

    @property
    def state(self) -> OrdersState:
        """What the running app's lifespan built (its typed state)."""
        return service_state(self.app, OrdersState)

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self.state.sessionmaker

    async def insert(self, *, user_id: str = "user-1", status: str = "CONFIRMED") -> str:
        """A settled order written straight to the database (no saga)."""
        order_id = new_id()
        async with self.sessionmaker() as session, session.begin():
            session.add(
                CustomerOrder(
                    id=order_id,
                    user_id=user_id,
                    status=status,
                    idempotency_key=uuid.uuid4().hex,
                    request_hash="0" * 64,
                    items=[{"sku": "SKU-1", "qty": 1}],
                    lines=[
                        {
                            "sku": "SKU-1",
                            "qty": 1,
                            "unit_price": 500,
                            "currency": "EUR",
                            "name": "Thing",
                        }
                    ],
                    subtotal=500,
                    total=500,
                    currency="EUR",
                    shipping_address=ADDRESS,
                    payment_method={"method": "card", "token": "tok"},
                    tracking_number="SBX000000000001",
                )
            )
        return str(order_id)


@asynccontextmanager
async def running(settings: OrdersSettings, keys: Keys) -> AsyncIterator[Orders]:
    app = create_app(settings)
    app.state.security = keys.security()
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://orders", timeout=30
        ) as client:
            yield Orders(app=app, client=client, keys=keys)


@pytest.fixture
async def orders(database_url: str, redis_url: str, keys: Keys) -> AsyncIterator[Orders]:
    async with running(settings_for(database_url, redis_url), keys) as service:
        yield service
