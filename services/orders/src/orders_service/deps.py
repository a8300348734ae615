"""Annotated dependency aliases: what an endpoint may ask for."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orders_service.saga.runner import SagaRunner
from orders_service.settings import OrdersSettings
from storefront_kit.events import OutboxRelay
from storefront_kit.security import AdminUser, CurrentUser, StaffUser

__all__ = [
    "AdminUser",
    "CurrentUser",
    "RedisDep",
    "RunnerDep",
    "SessionDep",
    "SessionmakerDep",
    "SettingsDep",
    "StaffUser",
]


# The accessors are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in
# its thread pool, a thread hop per dependency per request for a mere attribute read.
async def _settings(request: Request) -> OrdersSettings:
    settings: OrdersSettings = request.app.state.settings
    return settings


async def _redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


async def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessionmaker


async def _runner(request: Request) -> SagaRunner:
    runner: SagaRunner = request.app.state.saga_runner
    return runner


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's transaction: committed before the response, rolled back on error.

    After the commit the outbox relay is woken, so staged events leave at once.
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
            relay: OutboxRelay | None = getattr(request.app.state, "outbox_relay", None)
            if relay is not None:
                relay.notify()


SettingsDep = Annotated[OrdersSettings, Depends(_settings)]
RedisDep = Annotated[Redis, Depends(_redis)]
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessionmaker)]
RunnerDep = Annotated[SagaRunner, Depends(_runner)]
