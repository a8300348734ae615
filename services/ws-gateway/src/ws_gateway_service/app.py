"""The ws-gateway service as an ASGI app; uvicorn serves ``create_app`` as a factory."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from storefront_kit.app import create_service_app
from storefront_kit.health import HealthCheck, redis_check
from storefront_kit.redis import create_redis
from ws_gateway_service.api import routers
from ws_gateway_service.settings import WsGatewaySettings, get_settings

__all__ = ["create_app"]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Create the service's clients once; close them on shutdown."""
    settings: WsGatewaySettings = app.state.settings
    redis = create_redis(settings.redis_url, socket_timeout=settings.redis_socket_timeout_s)
    app.state.redis = redis
    try:
        yield
    finally:
        await redis.aclose()


def _health_checks(request: Request) -> Sequence[HealthCheck]:
    state = request.app.state
    return [redis_check(state.redis)]


def create_app(settings: WsGatewaySettings | None = None) -> FastAPI:
    """Build the ws-gateway service app."""
    return create_service_app(
        settings=settings or get_settings(),
        title="WebSocket gateway",
        description="Live order status and admin alerts over WebSockets, presence in Redis.",
        version="0.1.0",
        lifespan=lifespan,
        routers=routers,
        health_checks=_health_checks,
    )
