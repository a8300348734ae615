"""The engine factory against a real PostgreSQL."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from storefront_kit.db import create_engine
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
