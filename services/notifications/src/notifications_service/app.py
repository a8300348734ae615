"""The notifications service as an ASGI app; uvicorn serves ``create_app`` as a factory."""

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from notifications_service import fields
from notifications_service.adapters.auth import AuthClient
from notifications_service.adapters.chats import ChatDirectory
from notifications_service.adapters.telegram import TelegramBot
from notifications_service.api import routers
from notifications_service.background import TaskSet
from notifications_service.privacy import ERASURE_GROUP, USERS_STREAM, UserErasure
from notifications_service.service.events import OrderNotifier
from notifications_service.settings import NotificationsSettings, get_settings
from storefront_kit.app import create_service_app
from storefront_kit.db import create_engine, create_sessionmaker
from storefront_kit.events import StreamConsumer
from storefront_kit.health import HealthCheck, postgres_check, redis_check
from storefront_kit.redis import create_redis
from storefront_kit.security import ServiceSecurity

__all__ = ["create_app"]

OPENAPI_TAGS = [
    {"name": "telegram", "description": "The bot's webhook (Telegram only, secret required)."},
    {
        "name": "internal",
        "description": "Service-to-service only (auth): OTP delivery, chat link changes.",
    },
    {"name": "admin: notifications", "description": "Dead-lettered events (admin)."},
]


def _consumer_name(settings: NotificationsSettings) -> str:
    return settings.consumer_name or f"{socket.gethostname()}-{os.getpid()}"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Create the service's clients and background tasks once; stop and close on shutdown."""
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
    sessionmaker = create_sessionmaker(engine)
    app.state.sessionmaker = sessionmaker
    redis = create_redis(settings.redis_url, socket_timeout=settings.redis_socket_timeout_s)
    app.state.redis = redis
    security: ServiceSecurity = app.state.security
    auth_client = AuthClient(
        client=app.state.http_client,
        auth=security.auth_for("auth"),
        base_url=settings.auth_url,
        timeout_s=settings.auth_timeout_s,
    )
    app.state.auth_client = auth_client
    chats = ChatDirectory(
        redis=redis,
        auth=auth_client,
        cipher=fields.FIELDS.cipher,
        ttl_s=settings.chat_cache_ttl_s,
    )
    app.state.chats = chats
    telegram = TelegramBot(settings)
    app.state.telegram = telegram
    tasks = TaskSet()
    app.state.tasks = tasks

    stop = asyncio.Event()
    workers: list[asyncio.Task[None]] = [
        # getMe and setWebhook never hold up start-up: Telegram may be down right now.
        asyncio.create_task(telegram.set_up(stop), name="notifications-telegram-setup")
    ]
    consumer = StreamConsumer(
        redis=redis,
        stream=settings.consumer_stream,
        group=settings.consumer_group,
        consumer=_consumer_name(settings),
        handler=OrderNotifier(
            engine=engine,
            telegram=telegram,
            chats=chats,
            consumer=_consumer_name(settings),
            lease_s=settings.claim_lease_s,
        ),
        max_attempts=settings.consumer_max_attempts,
        block_ms=settings.consumer_block_ms,
        batch_size=settings.consumer_batch_size,
        claim_idle_ms=settings.consumer_claim_idle_ms,
        retry_delay_s=settings.consumer_retry_delay_s,
        dead_consumer_idle_ms=settings.consumer_dead_idle_ms,
    )
    app.state.consumer = consumer
    # user.erased from auth: the user's log, cached chat and dead letters go.
    erasure = StreamConsumer(
        redis=redis,
        stream=USERS_STREAM,
        group=ERASURE_GROUP,
        consumer=_consumer_name(settings),
        handler=UserErasure(
            sessionmaker=sessionmaker,
            redis=redis,
            chats=chats,
            dead_letter_streams=(consumer.dead_letter_stream,),
        ),
        block_ms=settings.consumer_block_ms,
        claim_idle_ms=settings.consumer_claim_idle_ms,
        dead_consumer_idle_ms=settings.consumer_dead_idle_ms,
    )
    app.state.erasure_consumer = erasure
    if settings.consumer_enabled:
        workers.append(asyncio.create_task(consumer.run(stop), name="notifications-consumer"))
        workers.append(asyncio.create_task(erasure.run(stop), name="notifications-erasure"))
    try:
        yield
    finally:
        stop.set()
        _, pending = await asyncio.wait(workers, timeout=settings.consumer_block_ms / 1000 + 2)
        for task in pending:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await tasks.aclose()
        await telegram.aclose()
        await redis.aclose()
        await engine.dispose()


def _health_checks(request: Request) -> Sequence[HealthCheck]:
    state = request.app.state
    return [postgres_check(state.engine), redis_check(state.redis)]


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    """Build the notifications service app."""
    settings = settings or get_settings()
    fields.install(*settings.field_crypto())
    app = create_service_app(
        settings=settings,
        title="Notifications",
        description="The Telegram bot: OTP delivery, receipts and order status messages.",
        version="0.1.0",
        lifespan=lifespan,
        routers=routers,
        health_checks=_health_checks,
        openapi_tags=OPENAPI_TAGS,
    )
    # Bot API URLs carry the bot token (/bot<token>/sendMessage): httpx logs every URL at
    # INFO, python-telegram-bot at DEBUG. Neither may reach the logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("telegram").setLevel(logging.WARNING)
    return app
