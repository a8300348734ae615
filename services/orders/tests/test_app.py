"""The orders service starts on its real dependencies and reports readiness honestly."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager

from jwt_core_lib import SigningKey
from orders_service.app import create_app
from orders_service.settings import OrdersSettings
from storefront_stack.pytest_plugin import create_test_database

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture(scope="module")
async def database_url(postgres_server_url: str) -> str:
    return await asyncio.to_thread(create_test_database, postgres_server_url, "orders_service")


@asynccontextmanager
async def serve(settings: OrdersSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
            yield client


#: Auth calls the orders export route: without its key the service is not ready.
CALLERS = {"auth": [SigningKey.generate().x]}


async def test_ready_when_its_dependencies_answer(database_url: str, redis_url: str) -> None:
    settings = OrdersSettings(
        database_url=database_url, redis_url=redis_url, service_token_callers=CALLERS
    )
    async with serve(settings) as client:
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")
    assert live.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "service_tokens": "ok"}


async def test_not_ready_and_names_redis_when_redis_is_down(database_url: str) -> None:
    settings = OrdersSettings(
        database_url=database_url, redis_url=DEAD_REDIS, service_token_callers=CALLERS
    )
    async with serve(settings) as client:
        ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json()["down"] == ["redis"]


async def test_openapi_describes_the_orders_service(database_url: str) -> None:
    async with serve(OrdersSettings(database_url=database_url, redis_url=DEAD_REDIS)) as client:
        schema = (await client.get("/openapi.json")).json()
        metrics = await client.get("/metrics")
    assert schema["info"]["title"]
    assert "/health/ready" in schema["paths"]
    assert "http_requests_total" in metrics.text
