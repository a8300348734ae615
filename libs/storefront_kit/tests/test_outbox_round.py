"""One relay round claims and marks its batch in one statement: it still publishes in
``(created_at, id)`` order, and a row it published is not published again."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase

from storefront_kit.db import create_engine, create_sessionmaker, metadata_with_conventions
from storefront_kit.events import EventEnvelope, OutboxMixin, OutboxRelay, add_outbox_event
from storefront_kit.redis import create_redis
from storefront_stack.pytest_plugin import create_test_database


class Base(DeclarativeBase):
    metadata = metadata_with_conventions()


class OutboxEvent(OutboxMixin, Base):
    __tablename__ = "outbox_event"


STREAM = "test.round.events"


@pytest.fixture(scope="module")
async def engine(postgres_server_url: str) -> AsyncIterator[AsyncEngine]:
    url = await asyncio.to_thread(create_test_database, postgres_server_url)
    engine = create_engine(url, pool_size=5)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    async with engine.begin() as connection:
        await connection.execute(OutboxEvent.__table__.delete())
    return create_sessionmaker(engine)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_url, socket_timeout=None)
    await client.delete(STREAM)
    yield client
    await client.aclose()


async def published_ns(redis: Redis) -> list[int]:
    return [EventEnvelope.from_stream_fields(f).data["n"] for _, f in await redis.xrange(STREAM)]


async def test_a_round_publishes_by_created_at_before_id_and_marks_what_it_published(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    async with sessionmaker() as session, session.begin():
        for n in range(6):
            event = EventEnvelope.new(type="thing.happened", source="tests", data={"n": n})
            add_outbox_event(session, OutboxEvent, stream=STREAM, event=event)
    # Ids grow with n; created_at is made to run the other way for all but the last two
    # (same created_at: their ids decide), so neither order alone gives the right one.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE outbox_event SET created_at = now() - interval '1 hour'"
                " - CAST(envelope->'data'->>'n' AS int) * interval '1 second'"
                " WHERE CAST(envelope->'data'->>'n' AS int) < 4"
            )
        )
        await session.execute(
            text(
                "UPDATE outbox_event SET created_at = now() - interval '2 hours'"
                " WHERE CAST(envelope->'data'->>'n' AS int) >= 4"
            )
        )
    relay = OutboxRelay(sessionmaker=sessionmaker, redis=redis, model=OutboxEvent)

    assert await relay.relay_once() == 6
    assert await relay.relay_once() == 0

    assert await published_ns(redis) == [4, 5, 3, 2, 1, 0]
    async with sessionmaker() as session:
        unpublished = await session.scalar(
            text("SELECT count(*) FROM outbox_event WHERE published_at IS NULL")
        )
    assert unpublished == 0
