"""The ws-gateway service as an ASGI app; uvicorn serves ``create_app`` as a factory."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from storefront_kit.app import create_service_app
from storefront_kit.events import StreamConsumer
from storefront_kit.health import HealthCheck, redis_check
from storefront_kit.redis import create_redis
from ws_gateway_service.api import routers
from ws_gateway_service.channels import ChannelLayer
from ws_gateway_service.hub import Hub, run_heartbeat
from ws_gateway_service.presence import Presence
from ws_gateway_service.privacy import ERASURE_GROUP, USERS_STREAM, UserErasure
from ws_gateway_service.relay import OrderEventRelay
from ws_gateway_service.settings import WsGatewaySettings, get_settings

__all__ = ["create_app"]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Redis, the channel layer, presence and the order-event relay."""
    settings: WsGatewaySettings = app.state.settings
    redis = create_redis(settings.redis_url, socket_timeout=settings.redis_socket_timeout_s)
    # Pub/sub blocks on reads: it gets its own client without a socket read timeout.
    pubsub_redis = create_redis(settings.redis_url, socket_timeout=None)
    app.state.redis = redis
    hub = Hub()
    channels = ChannelLayer(pubsub_redis, hub.deliver)
    hub.bind(channels)
    await channels.start()
    app.state.hub = hub
    app.state.channels = channels
    presence = Presence(redis, ttl_s=settings.presence_ttl_s)
    app.state.presence = presence
    stop = asyncio.Event()
    heartbeat_task = asyncio.create_task(
        run_heartbeat(
            hub,
            presence,
            interval_s=min(settings.heartbeat_interval_s, settings.presence_ttl_s / 3),
            stop=stop,
        ),
        name="heartbeat",
    )
    relay_task = None
    if settings.relay_enabled:
        consumer = StreamConsumer(
            redis=redis,
            stream=settings.orders_stream,
            group="ws-gateway",
            consumer=settings.instance_id,
            handler=OrderEventRelay(channels),
            claim_idle_ms=settings.relay_claim_idle_ms,
            dead_consumer_idle_ms=settings.relay_dead_consumer_idle_ms,
        )
        relay_task = asyncio.create_task(consumer.run(stop), name="orders-relay")
    erasure_task = None
    if settings.erasure_consumer_enabled:
        erasure = StreamConsumer(
            redis=redis,
            stream=USERS_STREAM,
            group=ERASURE_GROUP,
            consumer=settings.instance_id,
            handler=UserErasure(channels=channels, presence=presence),
            claim_idle_ms=settings.relay_claim_idle_ms,
            dead_consumer_idle_ms=settings.relay_dead_consumer_idle_ms,
        )
        erasure_task = asyncio.create_task(erasure.run(stop), name="users-erasure")
    try:
        yield
    finally:
        stop.set()
        await heartbeat_task
        for task in (relay_task, erasure_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await channels.stop()
        await pubsub_redis.aclose()
        await redis.aclose()


def _health_checks(request: Request) -> Sequence[HealthCheck]:
    return [redis_check(request.app.state.redis)]


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
