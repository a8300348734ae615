"""What every database-owning service's lifespan opens first and closes last.

Each lifespan used to build its engine, sessionmaker and Redis client with the same
calls and close them with the same two awaits; :func:`database_clients` does both, and
:func:`database_health_checks` is the readiness every such service reports::

    async with database_clients(settings) as (engine, sessionmaker, redis):
        ...  # the service's own clients and workers
        yield InventoryState(...)
"""

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, NamedTuple

from fastapi.requests import HTTPConnection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storefront_kit.db import create_sessionmaker, engine_from_settings
from storefront_kit.health import HealthCheck, postgres_check, redis_check
from storefront_kit.redis import redis_from_settings
from storefront_kit.settings import DatabaseSettingsMixin, ServiceSettings
from storefront_kit.state import DatabaseState, service_state

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["DatabaseClients", "database_clients", "database_health_checks"]


class DatabaseClients(NamedTuple):
    """The engine, its sessionmaker and the Redis client of a service."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: "Redis"


@asynccontextmanager
async def database_clients(
    settings: ServiceSettings, url: str | None = None
) -> AsyncIterator[DatabaseClients]:
    """Build the service's engine, sessionmaker and Redis from its settings; close on exit.

    ``settings`` must also be a :class:`~storefront_kit.settings.DatabaseSettingsMixin`.
    ``url``: the engine's database when not ``database_url`` (the first of a split
    service's). Redis is closed before the engine is disposed, as every lifespan did
    by hand.
    """
    if not isinstance(settings, DatabaseSettingsMixin):
        raise TypeError(f"{type(settings).__name__} carries no database settings")
    engine = engine_from_settings(settings, url)
    redis = redis_from_settings(settings)
    try:
        yield DatabaseClients(engine, create_sessionmaker(engine), redis)
    finally:
        await redis.aclose()
        await engine.dispose()


def database_health_checks(
    kind: type[DatabaseState],
) -> Callable[[HTTPConnection], Sequence[HealthCheck]]:
    """Readiness of a service that owns a database: its PostgreSQL and its Redis.

    Redis is checked through the state's ``redis_breaker`` when the service watches it.
    """

    def checks(request: HTTPConnection) -> Sequence[HealthCheck]:
        state = service_state(request, kind)
        return [postgres_check(state.engine), redis_check(state.redis, breaker=state.redis_breaker)]

    return checks
