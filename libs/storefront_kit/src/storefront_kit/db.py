"""Async SQLAlchemy: one engine per service, the request owns the transaction."""

from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from sqlalchemy import MetaData, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

__all__ = [
    "NAMING_CONVENTION",
    "create_engine",
    "create_sessionmaker",
    "metadata_with_conventions",
    "request_session",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def metadata_with_conventions() -> MetaData:
    """A ``MetaData`` using the one naming convention for keys and indexes."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    pool_timeout: float = 3.0,
    connect_timeout: float = 2.0,
    statement_timeout_ms: int | None = 10_000,
    application_name: str = "storefront",
) -> AsyncEngine:
    """An asyncpg engine with a sized pool and timeouts that fail fast when Postgres is down.

    A pooled connection whose server side is gone is replaced at checkout (see
    ``_discard_closed``); one that breaks mid-request fails that request (503) and
    makes the pool drop every connection of its generation.
    """
    server_settings = {"application_name": application_name}
    if statement_timeout_ms:
        server_settings["statement_timeout"] = str(statement_timeout_ms)
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        connect_args={"timeout": connect_timeout, "server_settings": server_settings},
    )
    event.listen(engine.sync_engine.pool, "checkout", _discard_closed)
    return engine


def _discard_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    # Instead of pool_pre_ping, whose asyncpg ping is BEGIN, ";" and ROLLBACK: three
    # round trips on every checkout, as many as a whole reservation's statements.
    # asyncpg reads every idle connection, so one whose server went away (restart,
    # terminated backend) is already marked closed; the pool then connects afresh.
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("connection closed by the server")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session: committed when the endpoint returns, rolled back on error.

    Use with ``Depends(request_session, scope="function")`` so the commit happens
    before the response is sent. Services only flush; they never commit.
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
