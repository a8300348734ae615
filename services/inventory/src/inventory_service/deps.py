"""Annotated dependency aliases: what an endpoint may ask for."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory_service.repository import OUTBOX_STAGED
from inventory_service.settings import InventorySettings
from storefront_kit.events import OutboxRelay
from storefront_kit.security import AdminUser, StaffUser

__all__ = ["AdminUser", "RedisDep", "SessionDep", "SettingsDep", "StaffUser"]


async def _settings(request: Request) -> InventorySettings:
    settings: InventorySettings = request.app.state.settings
    return settings


async def _redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's transaction: committed before the response, rolled back on error.

    After a commit that staged outbox events the relay is woken, so events leave
    within milliseconds instead of at its next poll.
    """
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()
            if session.info.get(OUTBOX_STAGED):
                relay: OutboxRelay | None = getattr(request.app.state, "outbox_relay", None)
                if relay is not None:
                    relay.notify()


SettingsDep = Annotated[InventorySettings, Depends(_settings)]
RedisDep = Annotated[Redis, Depends(_redis)]
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
