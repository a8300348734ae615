"""The stream consumers of notifications (the lifespan starts and stops their loops).

``orders.events`` becomes Telegram messages (:class:`~notifications_service.service.
notifier.OrderNotifier`); ``users.events`` carries ``user.erased``, after which the
user's log, cached chat and dead letters go (:class:`~notifications_service.service.
privacy.UserErasure`). Both consumer groups read at least once; the handlers are
idempotent.
"""

import os
import socket

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from notifications_service.clients.chats import ChatDirectory
from notifications_service.clients.telegram import TelegramBot
from notifications_service.events import ERASURE_GROUP, USERS_STREAM
from notifications_service.service.notifier import OrderNotifier
from notifications_service.service.privacy import UserErasure
from notifications_service.settings import NotificationsSettings
from storefront_kit.events import StreamConsumer

__all__ = ["consumer_name", "order_events_consumer", "user_erasure_consumer"]


def consumer_name(settings: NotificationsSettings) -> str:
    """This replica's name in the consumer groups (host and pid unless configured)."""
    return settings.consumer_name or f"{socket.gethostname()}-{os.getpid()}"


def order_events_consumer(
    settings: NotificationsSettings,
    *,
    redis: Redis,
    engine: AsyncEngine,
    telegram: TelegramBot,
    chats: ChatDirectory,
) -> StreamConsumer:
    """The ``orders.events`` consumer: one message per (event, chat, kind), each read's
    entries handled together (the notifier is a kit ``BatchHandler``)."""
    return StreamConsumer(
        redis=redis,
        stream=settings.consumer_stream,
        group=settings.consumer_group,
        consumer=consumer_name(settings),
        handler=OrderNotifier(
            engine=engine,
            telegram=telegram,
            chats=chats,
            consumer=consumer_name(settings),
            lease_s=settings.claim_lease_s,
            # A batch's sends share the bot's pool; more at once would only queue there.
            send_concurrency=settings.telegram_pool_size,
        ),
        max_attempts=settings.consumer_max_attempts,
        block_ms=settings.consumer_block_ms,
        batch_size=settings.consumer_batch_size,
        claim_idle_ms=settings.consumer_claim_idle_ms,
        retry_delay_s=settings.consumer_retry_delay_s,
        dead_consumer_idle_ms=settings.consumer_dead_idle_ms,
        linger_s=settings.consumer_linger_ms / 1000,
    )


def user_erasure_consumer(
    settings: NotificationsSettings,
    *,
    redis: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    chats: ChatDirectory,
    dead_letter_streams: tuple[str, ...],
) -> StreamConsumer:
    """The ``users.events`` consumer: ``user.erased`` from auth."""
    return StreamConsumer(
        redis=redis,
        stream=USERS_STREAM,
        group=ERASURE_GROUP,
        consumer=consumer_name(settings),
        handler=UserErasure(
            sessionmaker=sessionmaker,
            redis=redis,
            chats=chats,
            dead_letter_streams=dead_letter_streams,
        ),
        block_ms=settings.consumer_block_ms,
        claim_idle_ms=settings.consumer_claim_idle_ms,
        dead_consumer_idle_ms=settings.consumer_dead_idle_ms,
    )
