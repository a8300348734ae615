"""The ws-gateway service starts on its real dependencies and reports readiness honestly."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager

from jwt_core_lib import SigningKey
from ws_gateway_service.app import create_app
from ws_gateway_service.settings import WsGatewaySettings

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1
#: Auth calls the presence export route: without its key the service is not ready.
CALLERS = {"auth": [SigningKey.generate().x]}


@asynccontextmanager
async def serve(settings: WsGatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ws-gateway") as client:
            yield client


async def test_ready_when_its_dependencies_answer(redis_url: str) -> None:
    settings = WsGatewaySettings(redis_url=redis_url, service_token_callers=CALLERS)
    async with serve(settings) as client:
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")
    assert live.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"redis": "ok", "service_tokens": "ok"}


async def test_not_ready_and_names_redis_when_redis_is_down() -> None:
    settings = WsGatewaySettings(redis_url=DEAD_REDIS, service_token_callers=CALLERS)
    async with serve(settings) as client:
        ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json()["down"] == ["redis"]


async def test_openapi_describes_the_ws_gateway_service() -> None:
    async with serve(WsGatewaySettings(redis_url=DEAD_REDIS)) as client:
        schema = (await client.get("/openapi.json")).json()
        metrics = await client.get("/metrics")
    assert schema["info"]["title"]
    assert "/health/ready" in schema["paths"]
    assert "http_requests_total" in metrics.text
