"""Async SQLAlchemy: one engine per service, the request owns the transaction.

A transaction is committed or rolled back in one place: :func:`request_session` for a
request, :func:`unit_of_work` for a background task, both with the same rules (commit
when the block ends, roll back on an error unless it ``keeps_transaction``). Code that
must run only once its transaction committed (waking the outbox relay) registers an
:func:`after_commit` hook instead of asking every caller to remember it.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import MetaData, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext import asyncio as sqlalchemy_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from storefront_kit.errors import AppError
from storefront_kit.logging import get_logger
from storefront_kit.settings import DatabaseSettingsMixin
from storefront_kit.state import DatabaseState, find_service_state

__all__ = [
    "NAMING_CONVENTION",
    "SessionDep",
    "after_commit",
    "commit",
    "create_engine",
    "create_sessionmaker",
    "engine_from_settings",
    "metadata_with_conventions",
    "request_session",
    "unit_of_work",
]

logger = get_logger(__name__)

#: ``session.info`` key of the hooks waiting for the current transaction's commit.
_AFTER_COMMIT = "storefront_kit.after_commit"

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
    # Looked up when called: with tracing on, the SQLAlchemy instrumentation has wrapped
    # it (storefront_kit.tracing), and every engine made here is traced.
    engine = sqlalchemy_asyncio.create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        connect_args={"timeout": connect_timeout, "server_settings": server_settings},
    )
    event.listen(engine.sync_engine.pool, "checkout", _discard_closed)
    return engine


def engine_from_settings(settings: DatabaseSettingsMixin, url: str | None = None) -> AsyncEngine:
    """The service's engine as its settings size it (``<SERVICE>_DB_*``), named after it.

    ``url``: another of the service's databases (``settings.database_urls()``) than
    ``database_url``, with the same pool per database.
    """
    return create_engine(
        url or settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        connect_timeout=settings.db_connect_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        application_name=settings.service_name,
    )


def _discard_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    # Instead of pool_pre_ping, whose asyncpg ping is BEGIN, ";" and ROLLBACK: three
    # round trips on every checkout, as many as a whole reservation's statements.
    # asyncpg reads every idle connection, so one whose server went away (restart,
    # terminated backend) is already marked closed; the pool then connects afresh.
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("connection closed by the server")


class _HookedSession(Session):
    """A session that runs the :func:`after_commit` hooks of its transactions."""


@event.listens_for(_HookedSession, "after_commit")
def _run_after_commit_hooks(session: Session) -> None:
    # A savepoint's release is no commit: its hooks wait for the outer transaction.
    if session.in_nested_transaction():
        return
    hooks: dict[Callable[[], None], None] = session.info.pop(_AFTER_COMMIT, {})
    for hook in hooks:
        try:
            hook()
        except Exception as exc:
            # The transaction is committed: a failing hook must not turn that into an
            # error (the caller would take a durable change for a failed one).
            logger.warning("after_commit_hook_failed", hook=repr(hook), error=repr(exc))


@event.listens_for(_HookedSession, "after_transaction_end")
def _drop_after_commit_hooks(session: Session, transaction: SessionTransaction) -> None:
    # Hooks still registered when the outermost transaction ends were not committed
    # (rollback, or a session closed mid-transaction): what they announce never happened.
    if transaction.parent is None:
        session.info.pop(_AFTER_COMMIT, None)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit and run :func:`after_commit` hooks."""
    return async_sessionmaker(
        engine, expire_on_commit=False, autoflush=False, sync_session_class=_HookedSession
    )


def after_commit(session: AsyncSession, hook: Callable[[], None]) -> None:
    """Call ``hook`` once the session's current transaction commits, however it is committed.

    A rollback drops it; a hook registered twice runs once. The session must come from
    :func:`create_sessionmaker` (others would never run it).
    """
    if not isinstance(session.sync_session, _HookedSession):
        raise TypeError("after_commit needs a session from storefront_kit.db.create_sessionmaker")
    hooks: dict[Callable[[], None], None] = session.info.setdefault(_AFTER_COMMIT, {})
    hooks[hook] = None


async def commit(session: AsyncSession) -> None:
    """Commit the session's transaction now; its after-commit hooks run.

    For the rare use case whose work must be visible to other transactions before it
    goes on (a checkout commits its order before the saga starts on it in another
    task). The session stays usable: what follows runs in a new transaction, committed
    or rolled back as usual by :func:`request_session` or :func:`unit_of_work`.
    """
    await session.commit()


async def _end(session: AsyncSession, error: BaseException | None) -> None:
    # An error that keeps the transaction (refresh-token reuse revokes the family and
    # still answers 401) commits what was done before it; any other rolls back.
    if error is None or (isinstance(error, AppError) and error.keeps_transaction):
        await session.commit()
    else:
        await session.rollback()


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session whose transaction commits when the block ends and rolls back on error.

    An error marked ``keeps_transaction`` still commits before it propagates. Background
    tasks use this; requests use :func:`request_session` (the same rules).
    """
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException as exc:
            await _end(session, exc)
            raise
        else:
            await _end(session, None)


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session: committed when the endpoint returns, rolled back on error.

    Endpoints ask for it as :data:`SessionDep` (``Depends(request_session,
    scope="function")``), so the commit happens before the response is sent. An error
    marked ``keeps_transaction`` commits what was done before it. Services only flush;
    they never commit (see :func:`commit` for the exception). The sessionmaker is the
    lifespan state's (a :class:`~storefront_kit.state.DatabaseState`).
    """
    async with unit_of_work(_sessionmaker(request)) as session:
        yield session


#: The request's session for an endpoint (``session: SessionDep``). Function scope: the
#: commit happens when the endpoint returns, before the response is sent.
SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]


def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    state = find_service_state(request, DatabaseState)
    if state is not None:
        return state.sessionmaker
    # A service whose lifespan does not yield a DatabaseState yet.
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessionmaker
