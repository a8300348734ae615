"""The notification log's claim: one sender per (event, chat, kind), even under a race."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from notifications_service import repository
from notifications_service.models import NotificationStatus
from notifications_service.repository import Claim
from storefront_kit.db import create_engine, create_sessionmaker


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


async def claim(
    sessions: async_sessionmaker[AsyncSession],
    event_id: uuid.UUID,
    consumer: str,
    *,
    lease_s: float = 60,
) -> tuple[Claim, uuid.UUID | None]:
    async with sessions.begin() as session:
        return await repository.claim(
            session,
            event_id=event_id,
            event_type="order.created",
            chat_id=42,
            kind="order_created",
            consumer=consumer,
            lease_s=lease_s,
        )


async def finish(
    sessions: async_sessionmaker[AsyncSession], log_id: uuid.UUID | None, status: str
) -> None:
    assert log_id is not None
    async with sessions.begin() as session:
        await repository.finish(session, log_id, status=status, message_id=7, error=None)


async def test_of_many_concurrent_claims_exactly_one_wins(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    event_id = uuid.uuid4()

    results = await asyncio.gather(*(claim(sessions, event_id, f"c{i}") for i in range(8)))

    outcomes = sorted(outcome.value for outcome, _ in results)
    assert outcomes == ["busy"] * 7 + ["claimed"]


async def test_sent_is_final_and_failed_may_be_claimed_again(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    sent_event, failed_event = uuid.uuid4(), uuid.uuid4()
    _, sent_id = await claim(sessions, sent_event, "a")
    await finish(sessions, sent_id, NotificationStatus.SENT)
    _, failed_id = await claim(sessions, failed_event, "a")
    await finish(sessions, failed_id, NotificationStatus.FAILED)

    assert await claim(sessions, sent_event, "b") == (Claim.DONE, None)
    again, again_id = await claim(sessions, failed_event, "b")
    assert again is Claim.CLAIMED
    assert again_id == failed_id
    async with sessions() as session:
        row = await repository.get_log(
            session, event_id=failed_event, chat_id=42, kind="order_created"
        )
    assert row is not None
    assert (row.claimed_by, row.attempts, row.status) == ("b", 2, NotificationStatus.SENDING)


async def test_a_claim_whose_holder_died_expires_with_its_lease(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    event_id = uuid.uuid4()
    first, _ = await claim(sessions, event_id, "dead-replica")
    assert first is Claim.CLAIMED
    assert (await claim(sessions, event_id, "b"))[0] is Claim.BUSY
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE notification_log SET claimed_at = now() - interval '2 minutes'"
                " WHERE event_id = :id"
            ),
            {"id": event_id},
        )

    taken, _ = await claim(sessions, event_id, "b", lease_s=60)

    assert taken is Claim.CLAIMED
