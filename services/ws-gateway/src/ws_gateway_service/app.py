"""The ws-gateway service as an ASGI app; uvicorn serves ``create_app`` as a factory."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from storefront_kit.app import create_service_app
from storefront_kit.events import StreamConsumer
from storefront_kit.health import HealthCheck, redis_check
from storefront_kit.redis import redis_from_settings
from storefront_kit.state import service_state
from ws_gateway_service.api import routers
from ws_gateway_service.clients.channels import ChannelLayer
from ws_gateway_service.service.hub import Hub
from ws_gateway_service.service.presence import Presence
from ws_gateway_service.settings import WsGatewaySettings, get_settings
from ws_gateway_service.state import WsGatewayState
from ws_gateway_service.workers.erasure import ERASURE_GROUP, USERS_STREAM, UserErasure
from ws_gateway_service.workers.gc_freeze import run_gc_freezer
from ws_gateway_service.workers.heartbeat import heartbeat_slots, run_heartbeat
from ws_gateway_service.workers.relay import OrderEventRelay

__all__ = ["create_app"]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[WsGatewayState]:
    """Redis, the channel layer, presence and the order-event relay."""
    settings: WsGatewaySettings = app.state.settings
    redis = redis_from_settings(settings)
    # Pub/sub blocks on reads: it gets its own client without a socket read timeout.
    pubsub_redis = redis_from_settings(settings, blocking_reads=True)
    heartbeat_interval_s = min(settings.heartbeat_interval_s, settings.presence_ttl_s / 3)
    hub = Hub(heartbeat_slots=heartbeat_slots(heartbeat_interval_s))
    channels = ChannelLayer(pubsub_redis, hub.deliver)
    hub.bind(channels)
    await channels.start()
    presence = Presence(redis, ttl_s=settings.presence_ttl_s)
    stop = asyncio.Event()
    heartbeat_task = asyncio.create_task(
        run_heartbeat(
            hub,
            presence,
            interval_s=heartbeat_interval_s,
            stop=stop,
        ),
        name="heartbeat",
    )
    freezer_task = None
    if settings.gc_freeze_interval_s:
        freezer_task = asyncio.create_task(
            run_gc_freezer(
                freeze_every_s=settings.gc_freeze_interval_s,
                thaw_every_s=settings.gc_thaw_interval_s,
                stop=stop,
            ),
            name="gc-freezer",
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
            linger_s=settings.relay_linger_ms / 1000,
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
        yield WsGatewayState(
            settings=settings,
            redis=redis,
            pubsub_redis=pubsub_redis,
            channels=channels,
            hub=hub,
            presence=presence,
        )
    finally:
        stop.set()
        await heartbeat_task
        if freezer_task is not None:
            await freezer_task
        for task in (relay_task, erasure_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await channels.stop()
        await pubsub_redis.aclose()
        await redis.aclose()


def _health_checks(request: Request) -> Sequence[HealthCheck]:
    return [redis_check(service_state(request, WsGatewayState).redis)]


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
