"""Alembic glue: every service keeps its migrations in ``<service>_service/migrations``.

The service's ``env.py`` calls :func:`run_env` with its metadata; the runner, the
prestart step and the test harness call :func:`upgrade`.
"""

import asyncio

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

__all__ = ["alembic_config", "run_env", "upgrade"]


def alembic_config(package: str, database_url: str) -> Config:
    """An Alembic config for ``package``'s migrations against ``database_url``."""
    config = Config()
    config.set_main_option("script_location", f"{package}:migrations")
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.set_main_option(
        "file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d-%%(slug)s"
    )
    return config


def upgrade(package: str, database_url: str, revision: str = "head") -> None:
    """Apply ``package``'s migrations (blocking: run it in a thread from async code)."""
    command.upgrade(alembic_config(package, database_url), revision)


def _do_run(connection: Connection, target_metadata: MetaData) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str, target_metadata: MetaData) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_do_run, target_metadata)
    await engine.dispose()


def run_env(target_metadata: MetaData) -> None:
    """Body of a service's ``env.py``: online migrations over asyncpg, offline SQL otherwise."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_async(url, target_metadata))
