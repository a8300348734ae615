"""The notifications service as an ASGI app; uvicorn serves ``create_app`` as a factory."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from notifications_service.api import routers
from notifications_service.settings import NotificationsSettings, get_settings
from storefront_kit.app import create_service_app
from storefront_kit.db import create_engine, create_sessionmaker
from storefront_kit.health import HealthCheck, postgres_check, redis_check
from storefront_kit.redis import create_redis

__all__ = ["create_app"]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Create the service's clients once; close them on shutdown."""
    settings: NotificationsSettings = app.state.settings
    engine = create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        connect_timeout=settings.db_connect_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        application_name="notifications",
    )
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    redis = create_redis(settings.redis_url, socket_timeout=settings.redis_socket_timeout_s)
    app.state.redis = redis
    try:
        yield
    finally:
        await redis.aclose()
        await engine.dispose()


def _health_checks(request: Request) -> Sequence[HealthCheck]:
    state = request.app.state
    return [postgres_check(state.engine), redis_check(state.redis)]


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    """Build the notifications service app."""
    return create_service_app(
        settings=settings or get_settings(),
        title="Notifications",
        description="The Telegram bot: OTP delivery, receipts and order status messages.",
        version="0.1.0",
        lifespan=lifespan,
        routers=routers,
        health_checks=_health_checks,
    )
