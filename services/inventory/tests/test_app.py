"""What inventory's readiness and OpenAPI promise beyond every service's
(tests/contract/test_every_service.py checks those)."""

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


async def test_not_ready_while_one_internal_route_has_no_caller_that_could_sign_for_it(
    database_url: str, redis_url: str
) -> None:
    # Orders may reserve, but the catalog's export route has nobody who could call it.
    settings = InventorySettings(
        database_url=database_url,
        redis_url=redis_url,
        service_token_callers={"orders": [SigningKey.generate().x]},
    )
    async with serve(settings) as client:
        ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["down"] == ["service_tokens"]


async def test_openapi_describes_the_admin_patch_as_the_api_accepts_it(database_url: str) -> None:
    async with serve(InventorySettings(database_url=database_url, redis_url=DEAD_REDIS)) as client:
        schema = (await client.get("/openapi.json")).json()
    # The admin PATCH body as the API accepts it: no null field, at least one field.
    patch = schema["components"]["schemas"]["ProductPatch"]
    assert patch["minProperties"] == 1
    assert "null" not in str(patch["properties"])
    assert all("default" not in field for field in patch["properties"].values())
    operation = schema["paths"]["/api/v1/admin/products/{product_id}"]["patch"]
    assert {"400", "401", "403", "404", "412", "422", "428", "503"} <= set(operation["responses"])
