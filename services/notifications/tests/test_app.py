"""What notifications' OpenAPI promises beyond every service's
(tests/contract/test_every_service.py checks those)."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager

from jwt_core_lib import SigningKey
from notifications_service.app import create_app
from notifications_service.settings import NotificationsSettings
from storefront_stack.pytest_plugin import create_test_database

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture(scope="module")
async def database_url(postgres_server_url: str) -> str:
    return await asyncio.to_thread(
        create_test_database, postgres_server_url, "notifications_service"
    )


@asynccontextmanager
async def serve(settings: NotificationsSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://notifications"
        ) as client:
            yield client


CALLERS = {"auth": [SigningKey.generate().x]}  # its one caller


async def test_openapi_describes_the_bot_internal_and_admin_routes(database_url: str) -> None:
    async with serve(
        NotificationsSettings(
            database_url=database_url, redis_url=DEAD_REDIS, service_token_callers=CALLERS
        )
    ) as client:
        schema = (await client.get("/openapi.json")).json()
    assert {
        "/api/v1/telegram/webhook",
        "/internal/notifications/otp",
        "/api/v1/admin/notifications/dead-letters",
    } <= set(schema["paths"])
    otp = schema["paths"]["/internal/notifications/otp"]["post"]
    assert {"202", "401", "403", "422"} <= set(otp["responses"])
