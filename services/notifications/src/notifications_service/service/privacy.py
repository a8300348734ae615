"""A user's notifications: exported for auth, deleted when the user is erased.

``user.erased`` arrives on ``users.events`` (auth's outbox) and is read by the
``notifications-erasure`` consumer group, at least once; the handler is idempotent:

1. the user's notification log rows are deleted (those recording the user, and those
   of the chat still cached for them, from before rows recorded their user);
2. the cached chat (``notifications:chat:<user>``) is deleted, key and all;
3. dead-lettered order events naming the user (``orders.events.dead``) are deleted.

Run again (a redelivery, or the service catching up after being down), each step finds
nothing left and changes nothing. The database delete commits before the Redis steps;
a crash in between leaves the entry unacknowledged and the group delivers it again.
"""

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import orjson
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notifications_service import repository
from notifications_service.clients.chats import ChatDirectory
from notifications_service.events import ERASURE_GROUP, USER_ERASED, USERS_STREAM
from notifications_service.schemas import ExportedMessage, ExportedNotifications
from storefront_kit.events import EventEnvelope, PoisonMessage
from storefront_kit.logging import get_logger

__all__ = ["ERASURE_GROUP", "USERS_STREAM", "UserErasure", "export_notifications"]

logger = get_logger(__name__)

_SCAN_COUNT = 500


async def export_notifications(
    session: AsyncSession, chats: ChatDirectory, user_id: UUID
) -> ExportedNotifications:
    """The messages logged for the user and the chat cached for them."""
    rows = await repository.user_log(session, str(user_id))
    return ExportedNotifications(
        cached_chat_id=await chats.cached(user_id),
        messages=[ExportedMessage.model_validate(r, from_attributes=True) for r in rows],
    )


class UserErasure:
    """The ``users.events`` handler: forget everything about an erased user, once in effect."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        chats: ChatDirectory,
        dead_letter_streams: tuple[str, ...],
    ) -> None:
        self._sessionmaker = sessionmaker
        self._redis = redis
        self._chats = chats
        self._dead = dead_letter_streams

    async def __call__(self, event: EventEnvelope) -> None:
        if event.type != USER_ERASED:
            return
        try:
            user_id = UUID(str(event.data.get("user_id")))
        except ValueError:
            raise PoisonMessage("user.erased without a user id") from None
        chat_id = await self._chats.cached(user_id)
        async with self._sessionmaker() as session, session.begin():
            deleted = await repository.delete_user_log(session, str(user_id), chat_id=chat_id)
        await self._chats.drop(user_id)
        dropped = 0
        for stream in self._dead:
            dropped += await self._drop_dead_letters(stream, str(user_id))
        # Never the user id: log lines after an erasure name no erased user.
        logger.info(
            "user_notifications_erased",
            messages=deleted,
            dead_letters=dropped,
            event_id=str(event.id),
        )

    async def _drop_dead_letters(self, stream: str, user_id: str) -> int:
        """Delete the dead-lettered entries whose event names the user; how many."""
        dropped = 0
        start = "-"
        while True:
            entries = await self._redis.xrange(stream, min=start, count=_SCAN_COUNT)
            if not entries:
                return dropped
            doomed = [
                entry_id
                for entry_id, fields in entries
                if entry_id is not None and _names(fields or {}, user_id)
            ]
            if doomed:
                dropped += int(await self._redis.xdel(stream, *doomed))
            if len(entries) < _SCAN_COUNT:
                return dropped
            start = "(" + str(entries[-1][0])


def _names(fields: Mapping[Any, Any], user_id: str) -> bool:
    raw = fields.get("envelope")
    if isinstance(raw, bytes):
        raw = raw.decode()
    if not isinstance(raw, str):
        return False
    try:
        envelope = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return user_id in raw
    data = envelope.get("data") if isinstance(envelope, dict) else None
    return isinstance(data, dict) and str(data.get("user_id")) == user_id
