"""The migrations build exactly the schema the models describe, and downgrade cleanly."""

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from notifications_service.models import Base
from storefront_kit.migrations import alembic_config
from storefront_stack.pytest_plugin import create_test_database


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_match_the_models_and_downgrade(postgres_server_url: str) -> None:
    from alembic import command

    url = await asyncio.to_thread(
        create_test_database, postgres_server_url, "notifications_service"
    )
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(_diff)
        assert diff == []
        config = alembic_config("notifications_service", url)
        await asyncio.to_thread(command.downgrade, config, "base")
        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        await engine.dispose()
