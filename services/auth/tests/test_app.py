"""The auth service starts on its real dependencies and reports readiness honestly."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager

from auth_service.app import create_app
from auth_service.settings import AuthSettings
from jwt_core_lib import SigningKey
from storefront_stack.pytest_plugin import create_test_database

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture(scope="module")
async def database_url(postgres_server_url: str) -> str:
    return await asyncio.to_thread(create_test_database, postgres_server_url, "auth_service")


@asynccontextmanager
async def serve(settings: AuthSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
            yield client


CALLERS = {"notifications": [SigningKey.generate().x]}  # its one caller


async def test_ready_when_its_dependencies_answer(database_url: str, redis_url: str) -> None:
    async with serve(
        AuthSettings(database_url=database_url, redis_url=redis_url, service_token_callers=CALLERS)
    ) as client:
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")
    assert live.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "service_tokens": "ok"}


async def test_not_ready_and_names_redis_when_redis_is_down(database_url: str) -> None:
    async with serve(
        AuthSettings(database_url=database_url, redis_url=DEAD_REDIS, service_token_callers=CALLERS)
    ) as client:
        ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json()["down"] == ["redis"]


async def test_openapi_describes_the_auth_service(database_url: str) -> None:
    async with serve(
        AuthSettings(database_url=database_url, redis_url=DEAD_REDIS, service_token_callers=CALLERS)
    ) as client:
        schema = (await client.get("/openapi.json")).json()
        metrics = await client.get("/metrics")
    assert schema["info"]["title"]
    assert "/health/ready" in schema["paths"]
    assert "http_requests_total" in metrics.text
