"""The orders service on real PostgreSQL and Redis, with test signing keys.

Providers point at a closed port, so a saga started here fails fast at its first step
(inventory unreachable); tests that need settled orders insert them directly.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from orders_service.app import create_app
from orders_service.models import CustomerOrder
from orders_service.settings import OrdersSettings
from orders_service.state import OrdersState
from storefront_kit.ids import new_id
from storefront_stack.keys import KeyRing
from storefront_stack.pytest_plugin import UNHURRIED_REDIS_WATCH, database_fixture
from storefront_stack.serving import RunningService, in_process
from storefront_stack.shop import UK_ADDRESS as ADDRESS

DEAD_URL = "http://127.0.0.1:1"  # nothing listens on port 1


class Keys(KeyRing):
    def headers(self, subject: str, *roles: str) -> dict[str, str]:
        token = self.user_token(*(roles or ("customer",)), subject=subject)
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(service="orders", caller="auth")


database_url = database_fixture("orders_service")


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
        **UNHURRIED_REDIS_WATCH,
    }
    values.update(overrides)
    return OrdersSettings(**values)


@dataclass
class Orders(RunningService[OrdersState]):
    state_type = OrdersState
    app: FastAPI
    client: httpx.AsyncClient
    keys: Keys

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
    async with in_process(app, "http://orders") as client:
        yield Orders(app=app, client=client, keys=keys)


@pytest.fixture
async def orders(database_url: str, redis_url: str, keys: Keys) -> AsyncIterator[Orders]:
    async with running(settings_for(database_url, redis_url), keys) as service:
        yield service
