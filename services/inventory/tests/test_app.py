"""The inventory service starts on its real dependencies and reports readiness honestly."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager

from inventory_service.app import create_app
from inventory_service.settings import InventorySettings
from jwt_core_lib import SigningKey
from storefront_stack.pytest_plugin import create_test_database

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture(scope="module")
async def database_url(postgres_server_url: str) -> str:
    return await asyncio.to_thread(create_test_database, postgres_server_url, "inventory_service")


@asynccontextmanager
async def serve(settings: InventorySettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://inventory") as client:
            yield client


CALLERS = {"orders": [SigningKey.generate().x], "catalog": [SigningKey.generate().x]}


async def test_ready_when_its_dependencies_answer(database_url: str, redis_url: str) -> None:
    settings = InventorySettings(
        database_url=database_url, redis_url=redis_url, service_token_callers=CALLERS
    )
    async with serve(settings) as client:
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")
    assert live.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "service_tokens": "ok"}


@pytest.mark.parametrize("callers", [{}, {"orders": CALLERS["orders"]}])
async def test_not_ready_while_a_route_has_no_caller_that_could_sign_for_it(
    database_url: str, redis_url: str, callers: dict[str, list[str]]
) -> None:
    settings = InventorySettings(
        database_url=database_url, redis_url=redis_url, service_token_callers=callers
    )
    async with serve(settings) as client:
        ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["down"] == ["service_tokens"]  # orders alone: nobody may export


async def test_not_ready_and_names_redis_when_redis_is_down(database_url: str) -> None:
    settings = InventorySettings(
        database_url=database_url, redis_url=DEAD_REDIS, service_token_callers=CALLERS
    )
    async with serve(settings) as client:
        ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json()["down"] == ["redis"]


async def test_openapi_describes_the_inventory_service(database_url: str) -> None:
    async with serve(InventorySettings(database_url=database_url, redis_url=DEAD_REDIS)) as client:
        schema = (await client.get("/openapi.json")).json()
        metrics = await client.get("/metrics")
    assert schema["info"]["title"]
    assert "/health/ready" in schema["paths"]
    assert "http_requests_total" in metrics.text
    # The admin PATCH body as the API accepts it: no null field, at least one field.
    patch = schema["components"]["schemas"]["ProductPatch"]
    assert patch["minProperties"] == 1
    assert "null" not in str(patch["properties"])
    assert all("default" not in field for field in patch["properties"].values())
    operation = schema["paths"]["/api/v1/admin/products/{product_id}"]["patch"]
    assert {"400", "401", "403", "404", "412", "422", "428", "503"} <= set(operation["responses"])
