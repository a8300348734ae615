"""The notifications service as an ASGI app; uvicorn serves ``create_app`` as a factory."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from notifications_service import fields
from notifications_service.api import routers
from notifications_service.clients.auth import AuthClient
from notifications_service.clients.chats import ChatDirectory
from notifications_service.clients.telegram import TelegramBot
from notifications_service.settings import NotificationsSettings, get_settings
from notifications_service.state import NotificationsState
from notifications_service.workers.consumers import order_events_consumer, user_erasure_consumer
from storefront_kit.app import create_service_app
from storefront_kit.lifespan import database_clients, database_health_checks
from storefront_kit.security import ServiceSecurity
from storefront_kit.tasks import TaskSet, background_loops

__all__ = ["create_app"]

#: Each tag of the routes, and what it groups (the docs page shows them in this order).
OPENAPI_TAGS = {
    "telegram": "The bot's webhook (Telegram only, secret required).",
    "internal": "Service-to-service only (auth): OTP delivery, chat link changes.",
    "admin: notifications": "Dead-lettered events (admin).",
}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[NotificationsState]:
    """Create the service's clients and background tasks once; stop and close on shutdown."""
    settings: NotificationsSettings = app.state.settings
    async with database_clients(settings) as (engine, sessionmaker, redis):
        security: ServiceSecurity = app.state.security
        auth_client = AuthClient(
            client=app.state.http_client,
            auth=security.auth_for("auth"),
            base_url=settings.auth_url,
            timeout_s=settings.auth_timeout_s,
        )
        chats = ChatDirectory(
            redis=redis,
            auth=auth_client,
            cipher=fields.FIELDS.cipher,
            ttl_s=settings.chat_cache_ttl_s,
        )
        telegram = TelegramBot(settings)
        tasks = TaskSet()
        consumer = order_events_consumer(
            settings, redis=redis, engine=engine, telegram=telegram, chats=chats
        )
        # user.erased from auth: the user's log, cached chat and dead letters go.
        erasure = user_erasure_consumer(
            settings,
            redis=redis,
            sessionmaker=sessionmaker,
            chats=chats,
            dead_letter_streams=(consumer.dead_letter_stream,),
        )
        try:
            async with background_loops(timeout_s=settings.consumer_block_ms / 1000 + 2) as loops:
                # getMe and setWebhook never hold up start-up: Telegram may be down right now.
                loops.start(telegram.set_up(loops.stop), name="notifications-telegram-setup")
                if settings.consumer_enabled:
                    loops.start(consumer.run(loops.stop), name="notifications-consumer")
                    loops.start(erasure.run(loops.stop), name="notifications-erasure")
                yield NotificationsState(
                    settings=settings,
                    redis=redis,
                    engine=engine,
                    sessionmaker=sessionmaker,
                    auth_client=auth_client,
                    chats=chats,
                    telegram=telegram,
                    tasks=tasks,
                    order_consumer=consumer,
                    erasure_consumer=erasure,
                )
        finally:
            await tasks.aclose()
            await telegram.aclose()


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
        health_checks=database_health_checks(NotificationsState),
        openapi_tags=OPENAPI_TAGS,
    )
    # Bot API URLs carry the bot token (/bot<token>/sendMessage): httpx logs every URL at
    # INFO, python-telegram-bot at DEBUG. Neither may reach the logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("telegram").setLevel(logging.WARNING)
    return app
