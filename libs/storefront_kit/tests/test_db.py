"""The engine factory and the transaction helpers against a real PostgreSQL."""

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storefront_kit.db import (
    after_commit,
    commit,
    create_engine,
    create_sessionmaker,
    request_session,
    unit_of_work,
)
from storefront_kit.errors import Conflict
from storefront_kit.problems import install_problem_handlers
from storefront_stack.pytest_plugin import create_test_database


@pytest.fixture
async def engine(postgres_server_url: str) -> AsyncIterator[AsyncEngine]:
    url = await asyncio.to_thread(create_test_database, postgres_server_url)
    engine = create_engine(url, pool_size=2, max_overflow=0, application_name="kit-db-test")
    yield engine
    await engine.dispose()


async def test_pooled_connections_whose_server_side_died_are_replaced_at_checkout(
    engine: AsyncEngine,
) -> None:
    # What pool_pre_ping did with three round trips per checkout: a server restart or a
    # terminated backend must not fail the next request that borrows the connection.
    async with engine.connect() as first, engine.connect() as second:
        pids = {
            (await first.execute(text("SELECT pg_backend_pid()"))).scalar_one(),
            (await second.execute(text("SELECT pg_backend_pid()"))).scalar_one(),
        }
    killer = create_engine(engine.url.render_as_string(hide_password=False), pool_size=1)
    try:
        async with killer.connect() as connection:
            await connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) AS pid"),
                {"pids": list(pids)},
            )
    finally:
        await killer.dispose()
    await asyncio.sleep(0.2)  # the client notices the closed sockets on its next loop turn
    async with engine.connect() as again, engine.connect() as other:
        fresh = {
            (await again.execute(text("SELECT pg_backend_pid()"))).scalar_one(),
            (await other.execute(text("SELECT pg_backend_pid()"))).scalar_one(),
        }
    assert fresh.isdisjoint(pids)


# --- transactions: request_session, unit_of_work, after-commit hooks ----------------------


class Kept(Conflict):
    keeps_transaction = True


@pytest.fixture
async def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE IF NOT EXISTS thing (n int NOT NULL)"))
        await connection.execute(text("DELETE FROM thing"))
    return create_sessionmaker(engine)


async def _things(sessionmaker: async_sessionmaker[AsyncSession]) -> list[int]:
    async with sessionmaker() as session:
        return list((await session.scalars(text("SELECT n FROM thing ORDER BY n"))).all())


async def _insert(session: AsyncSession, n: int) -> None:
    await session.execute(text("INSERT INTO thing (n) VALUES (:n)"), {"n": n})


async def test_after_commit_hooks_run_once_after_the_commit_and_are_dropped_by_a_rollback(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    calls: list[str] = []

    def committed() -> None:
        calls.append("committed")

    def rolled_back() -> None:
        calls.append("rolled back")

    async with sessionmaker() as session:
        await _insert(session, 1)
        after_commit(session, rolled_back)
        await session.rollback()
        await _insert(session, 2)
        after_commit(session, committed)
        after_commit(session, committed)  # registered twice, runs once
        assert calls == []  # nothing before the commit
        await session.commit()
        assert calls == ["committed"]
        await _insert(session, 3)
        await session.commit()  # a later transaction does not run it again
    async with sessionmaker() as session:
        after_commit(session, rolled_back)  # closed without a commit: dropped
    assert calls == ["committed"]
    assert await _things(sessionmaker) == [2, 3]


async def test_a_failing_after_commit_hook_neither_fails_nor_undoes_the_commit(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ran: list[int] = []

    def broken() -> None:
        raise RuntimeError("hook failed")

    async with unit_of_work(sessionmaker) as session:
        await _insert(session, 1)
        after_commit(session, broken)
        after_commit(session, lambda: ran.append(1))
    assert ran == [1]
    assert await _things(sessionmaker) == [1]


async def test_after_commit_refuses_a_session_that_would_never_run_the_hook(
    engine: AsyncEngine,
) -> None:
    async with async_sessionmaker(engine)() as session:
        with pytest.raises(TypeError):
            after_commit(session, lambda: None)


async def test_unit_of_work_commits_at_the_end_and_rolls_back_on_an_error_unless_kept(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with unit_of_work(sessionmaker) as session:
        await _insert(session, 1)
    with pytest.raises(Conflict):
        async with unit_of_work(sessionmaker) as session:
            await _insert(session, 2)
            raise Conflict("undone")
    with pytest.raises(Kept):
        async with unit_of_work(sessionmaker) as session:
            await _insert(session, 3)
            raise Kept("kept although it fails")
    assert await _things(sessionmaker) == [1, 3]


async def test_request_session_commits_before_the_response_and_not_on_an_error_response(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.sessionmaker = sessionmaker
    Session = Annotated[AsyncSession, Depends(request_session, scope="function")]

    @app.post("/things/{n}")
    async def add(n: int, session: Session, fail: str = "") -> dict[str, int]:
        await _insert(session, n)
        if fail == "conflict":
            raise Conflict("undone")
        if fail == "kept":
            raise Kept("kept although it fails")
        return {"n": n}

    @app.post("/early/{n}")
    async def early(n: int, session: Session) -> list[int]:
        await _insert(session, n)
        await commit(session)
        # Committed: another session (a task started now) sees the row at once.
        seen = await _things(sessionmaker)
        await _insert(session, n + 1)  # the rest commits when the endpoint returns
        return seen

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit") as client:
        assert (await client.post("/things/1")).status_code == 200
        assert await _things(sessionmaker) == [1]  # committed before the response
        assert (await client.post("/things/2", params={"fail": "conflict"})).status_code == 409
        assert (await client.post("/things/3", params={"fail": "kept"})).status_code == 409
        early_response = await client.post("/early/10")
    assert early_response.json() == [1, 3, 10]
    assert await _things(sessionmaker) == [1, 3, 10, 11]
