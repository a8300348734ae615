"""Outbox, relay and stream consumer against real PostgreSQL and Redis."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase

from storefront_kit.db import (
    create_engine,
    create_sessionmaker,
    metadata_with_conventions,
    unit_of_work,
)
from storefront_kit.events import (
    BatchEntry,
    EventEnvelope,
    OutboxMixin,
    OutboxRelay,
    PoisonMessage,
    StreamConsumer,
    add_outbox_event,
)
from storefront_kit.redis import create_redis
from storefront_kit.request_id import request_id_var
from storefront_stack.pytest_plugin import create_test_database


class Base(DeclarativeBase):
    metadata = metadata_with_conventions()


class OutboxEvent(OutboxMixin, Base):
    __tablename__ = "outbox_event"


STREAM = "test.events"

# The relay and the consumers on one Redis server and on a three-master cluster.
pytestmark = pytest.mark.redis_modes


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
    yield client
    await client.aclose()


def event(n: int) -> EventEnvelope:
    return EventEnvelope.new(type="thing.happened", source="tests", data={"n": n})


def stage(session: AsyncSession, n: int) -> None:
    """Event ``n`` staged in ``session``'s transaction."""
    add_outbox_event(session, OutboxEvent, stream=STREAM, event=event(n))


async def staged(sessionmaker: async_sessionmaker[AsyncSession], ns: Iterable[int]) -> None:
    """Events ``ns`` staged in one committed transaction."""
    async with sessionmaker() as session, session.begin():
        for n in ns:
            stage(session, n)


async def published_ns(redis: Redis) -> list[int]:
    """The ``n`` of every event on the stream, in the order published."""
    return [EventEnvelope.from_stream_fields(f).data["n"] for _, f in await redis.xrange(STREAM)]


async def until(condition: Callable[[], Awaitable[bool]], *, within_s: float = 5) -> None:
    """Wait (``within_s`` at most) until ``condition`` holds."""
    async with asyncio.timeout(within_s):
        while not await condition():
            await asyncio.sleep(0.02)


async def published(redis: Redis, count: int) -> bool:
    """Whether ``count`` events are on the stream."""
    return bool(await redis.xlen(STREAM) == count)


@asynccontextmanager
async def running(relay: OutboxRelay) -> AsyncIterator[asyncio.Task[None]]:
    """``relay`` running for the block, stopped (by the stop alone) when it ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        yield task
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await task


async def test_envelope_carries_request_id_and_round_trips_through_stream_fields() -> None:
    token = request_id_var.set("req-12345678")
    try:
        envelope = event(1)
    finally:
        request_id_var.reset(token)
    assert envelope.request_id == "req-12345678"
    assert envelope.id.version == 7
    assert EventEnvelope.from_stream_fields(envelope.to_stream_fields()) == envelope


async def test_relay_publishes_committed_events_once_in_order(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    await staged(sessionmaker, range(5))
    relay = OutboxRelay(sessionmaker=sessionmaker, redis=redis, model=OutboxEvent)
    assert await relay.relay_once() == 5
    assert await relay.relay_once() == 0
    assert await published_ns(redis) == [0, 1, 2, 3, 4]


async def test_a_round_publishes_by_created_at_before_id_and_marks_what_it_published(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    # One statement claims and marks a round's batch, and RETURNING has no order: the
    # relay restores (created_at, id) order itself.
    await staged(sessionmaker, range(6))
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
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))
        )
    assert unpublished == 0


async def test_rolled_back_change_publishes_nothing(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    async with sessionmaker() as session, session.begin():
        stage(session, 1)
        await session.flush()
        await session.rollback()
    relay = OutboxRelay(sessionmaker=sessionmaker, redis=redis, model=OutboxEvent)
    assert await relay.relay_once() == 0
    assert await redis.xlen(STREAM) == 0


async def _published_at(
    sessionmaker: async_sessionmaker[AsyncSession], ages_s: dict[int, float | None]
) -> None:
    """Outbox rows ``n`` published ``ages_s[n]`` seconds ago (``None``: not yet)."""
    await staged(sessionmaker, ages_s)
    async with sessionmaker() as session, session.begin():
        for row in await session.scalars(select(OutboxEvent)):
            n = row.envelope["data"]["n"]
            if n in ages_s and (age := ages_s[n]) is not None:
                row.published_at = datetime.now(UTC) - timedelta(seconds=age)


async def _left(sessionmaker: async_sessionmaker[AsyncSession]) -> list[int]:
    async with sessionmaker() as session:
        rows = await session.scalars(select(OutboxEvent))
        return sorted(row.envelope["data"]["n"] for row in rows)


async def test_purge_deletes_only_rows_published_longer_ago_than_the_retention(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    day = 24 * 3600.0
    # 0, 1: published 8 and 30 days ago; 2: 6 days ago; 3: a minute ago; 4, 5: unpublished
    # (5 is as old as anything here: age never deletes an event nobody has seen).
    await _published_at(
        sessionmaker, {0: 8 * day, 1: 30 * day, 2: 6 * day, 3: 60, 4: None, 5: None}
    )
    relay = OutboxRelay(
        sessionmaker=sessionmaker, redis=redis, model=OutboxEvent, retention_s=7 * day
    )
    assert await relay.purge_once() == 2
    assert await _left(sessionmaker) == [2, 3, 4, 5]
    assert await relay.purge_once() == 0
    keeps_all = OutboxRelay(
        sessionmaker=sessionmaker, redis=redis, model=OutboxEvent, retention_s=None
    )
    await _published_at(sessionmaker, {10: 365 * day})
    assert await keeps_all.purge_once() == 0
    assert await _left(sessionmaker) == [2, 3, 4, 5, 10]


async def test_running_relay_purges_a_backlog_in_batches_and_still_relays(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    await _published_at(sessionmaker, dict.fromkeys(range(25), 3600.0))
    relay = OutboxRelay(
        sessionmaker=sessionmaker,
        redis=redis,
        model=OutboxEvent,
        retention_s=60,
        purge_batch_size=10,
        poll_interval_s=0.01,
    )
    async with running(relay):
        await staged(sessionmaker, [100])
        relay.notify()

        async def purged_and_relayed() -> bool:
            return await _left(sessionmaker) == [100] and await redis.xlen(STREAM) == 1

        await until(purged_and_relayed, within_s=10)
    # The new event was relayed (and, published a moment ago, kept).
    assert await published_ns(redis) == [100]


async def test_a_commit_that_staged_events_wakes_the_relay_without_waiting_for_its_poll(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    # Polling every minute: only the wake-up that staging registered can publish in time.
    relay = OutboxRelay(
        sessionmaker=sessionmaker, redis=redis, model=OutboxEvent, poll_interval_s=60
    )
    async with running(relay):
        await asyncio.sleep(0.2)  # the first round found nothing: the relay sleeps
        async with unit_of_work(sessionmaker) as session:
            stage(session, 2)
        await until(lambda: published(redis, 1))
    assert await published_ns(redis) == [2]


async def test_a_commit_landing_while_the_relay_publishes_is_not_left_for_the_next_poll(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    # The second commit (and its wake-up) lands while the relay is still in the round
    # that published the first: that round's SELECT did not see it, and the wake-up must
    # not be forgotten, or the event waits out the poll (a minute here).
    class Racing(OutboxRelay):
        raced = False

        async def relay_once(self) -> int:
            published = await super().relay_once()
            if published and not self.raced:
                self.raced = True
                async with unit_of_work(sessionmaker) as session:
                    stage(session, 3)
            return published

    relay = Racing(sessionmaker=sessionmaker, redis=redis, model=OutboxEvent, poll_interval_s=60)
    async with running(relay):
        await asyncio.sleep(0.2)
        async with unit_of_work(sessionmaker) as session:
            stage(session, 2)
        await until(lambda: published(redis, 2))
    assert await published_ns(redis) == [2, 3]


async def test_a_relay_told_to_stop_stops_without_waiting_out_its_poll(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    relay = OutboxRelay(
        sessionmaker=sessionmaker, redis=redis, model=OutboxEvent, poll_interval_s=60
    )
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    await asyncio.sleep(0.2)  # asleep until the next poll, a minute away
    stop.set()  # no wake-up: the stop alone ends the wait
    async with asyncio.timeout(5):
        await running


async def test_relay_keeps_events_when_redis_is_down(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    await staged(sessionmaker, [1])
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    with pytest.raises(Exception):  # noqa: B017, PT011
        await OutboxRelay(sessionmaker=sessionmaker, redis=dead, model=OutboxEvent).relay_once()
    await dead.aclose()
    async with sessionmaker() as session:
        unpublished = await session.scalar(
            select(func.count()).where(OutboxEvent.published_at.is_(None))
        )
    assert unpublished == 1
    assert (
        await OutboxRelay(sessionmaker=sessionmaker, redis=redis, model=OutboxEvent).relay_once()
        == 1
    )


async def test_concurrent_relays_never_publish_a_row_twice(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    await staged(sessionmaker, range(300))
    relays = [
        OutboxRelay(sessionmaker=sessionmaker, redis=redis, model=OutboxEvent, batch_size=20)
        for _ in range(4)
    ]

    async def drain(relay: OutboxRelay) -> int:
        total = 0
        while published := await relay.relay_once():
            total += published
        return total

    counts = await asyncio.gather(*(drain(r) for r in relays))
    assert sum(counts) == 300
    ids = [f["id"] for _, f in await redis.xrange(STREAM)]
    assert len(ids) == len(set(ids)) == 300


def consumer(redis: Redis, handler: Any, name: str = "c1", **kwargs: Any) -> StreamConsumer:
    """Consumer ``name`` of the test stream's group ``testers`` (blocking 50 ms unless
    ``kwargs`` say otherwise)."""
    options: dict[str, Any] = {"block_ms": 50, **kwargs}
    return StreamConsumer(
        redis=redis, stream=STREAM, group="testers", consumer=name, handler=handler, **options
    )


async def test_consumer_acknowledges_only_after_the_handler_succeeded(redis: Redis) -> None:
    seen: list[int] = []

    async def handler(e: EventEnvelope) -> None:
        seen.append(e.data["n"])

    c = consumer(redis, handler)
    await c.ensure_group()
    for n in range(3):
        await redis.xadd(STREAM, event(n).to_stream_fields())  # type: ignore[arg-type]
    assert await c.process_batch() == 3
    assert seen == [0, 1, 2]
    pending = await redis.xpending(STREAM, "testers")
    assert pending["pending"] == 0


async def test_a_batch_handles_only_the_newest_state_of_each_entity(redis: Redis) -> None:
    # Events carrying an entity's whole state: within one batch, older states of the
    # same entity are acknowledged without reaching the handler, whatever their order.
    seen: list[tuple[str, int]] = []

    async def handler(e: EventEnvelope) -> None:
        seen.append((e.data["key"], e.data["v"]))

    def state_key(e: EventEnvelope) -> tuple[str, int] | None:
        return None if e.data.get("key") is None else (e.data["key"], e.data["v"])

    c = consumer(redis, handler, state_key=state_key)
    await c.ensure_group()
    sent = [("a", 1), ("b", 1), ("a", 3), ("a", 2), ("b", 2), (None, 9), ("b", 2)]
    for key, version in sent:
        envelope = EventEnvelope.new(
            type="thing.changed", source="tests", data={"key": key, "v": version}
        )
        await redis.xadd(STREAM, envelope.to_stream_fields())  # type: ignore[arg-type]
    assert await c.process_batch() == 3
    # a@3 came before a@2 and still wins; of two equal versions the later is kept.
    assert sorted(seen, key=str) == sorted([("a", 3), ("b", 2), (None, 9)], key=str)
    assert (await redis.xpending(STREAM, "testers"))["pending"] == 0


async def test_failing_event_is_retried_then_dead_lettered_without_blocking_others(
    redis: Redis,
) -> None:
    calls: dict[int, int] = {}

    async def handler(e: EventEnvelope) -> None:
        n = e.data["n"]
        calls[n] = calls.get(n, 0) + 1
        if n == 1:
            raise RuntimeError("index down")

    c = consumer(redis, handler, max_attempts=3)
    await c.ensure_group()
    for n in range(3):
        await redis.xadd(STREAM, event(n).to_stream_fields())  # type: ignore[arg-type]
    await c.process_batch()
    assert calls == {0: 1, 1: 1, 2: 1}
    await c.process_batch(pending=True)
    await c.process_batch(pending=True)
    assert calls[1] == 3
    dead = await redis.xrange(c.dead_letter_stream)
    assert len(dead) == 1
    assert EventEnvelope.from_stream_fields(dead[0][1]).data["n"] == 1
    assert "index down" in dead[0][1]["dead_reason"]
    assert (await redis.xpending(STREAM, "testers"))["pending"] == 0


async def test_poison_and_unparseable_messages_go_straight_to_dead_letters(redis: Redis) -> None:
    async def handler(e: EventEnvelope) -> None:
        raise PoisonMessage("unknown product shape")

    c = consumer(redis, handler)
    await c.ensure_group()
    await redis.xadd(STREAM, {"envelope": "{not json"})
    await redis.xadd(STREAM, event(1).to_stream_fields())  # type: ignore[arg-type]
    await c.process_batch()
    reasons = [f["dead_reason"] for _, f in await redis.xrange(c.dead_letter_stream)]
    assert reasons[0].startswith("unparseable")
    assert reasons[1].startswith("poison")


class Batched:
    """A batch handler: every entry whose ``n`` is in ``failing`` fails (``poison``: is
    poison); records each batch's ``n``s and the request id each entry's scope sees."""

    def __init__(self, *, failing: Iterable[int] = (), poison: Iterable[int] = ()) -> None:
        self.failing, self.poison = set(failing), set(poison)
        self.batches: list[list[int]] = []
        self.request_ids: dict[int, str | None] = {}
        self.single: list[int] = []

    async def __call__(self, e: EventEnvelope) -> None:
        self.single.append(e.data["n"])

    async def handle_batch(self, entries: Sequence[BatchEntry]) -> list[Exception | None]:
        self.batches.append([entry.event.data["n"] for entry in entries])
        outcomes: list[Exception | None] = []
        for entry in entries:
            n = entry.event.data["n"]
            with entry.scope():
                self.request_ids[n] = request_id_var.get()
            if n in self.poison:
                outcomes.append(PoisonMessage(f"{n} is poison"))
            elif n in self.failing:
                outcomes.append(RuntimeError(f"{n} failed"))
            else:
                outcomes.append(None)
        return outcomes


def event_with_request_id(n: int) -> EventEnvelope:
    token = request_id_var.set(f"req-{n}")
    try:
        return event(n)
    finally:
        request_id_var.reset(token)


async def test_a_batch_handler_gets_the_read_at_once_and_each_entry_its_outcome(
    redis: Redis,
) -> None:
    handler = Batched(failing={1}, poison={3})
    c = consumer(redis, handler, max_attempts=2)
    await c.ensure_group()
    for n in range(5):
        fields = event_with_request_id(n).to_stream_fields()
        await redis.xadd(STREAM, fields)  # type: ignore[arg-type]
    await redis.xadd(STREAM, {"envelope": "{not json"})

    assert await c.process_batch() == 6
    assert handler.batches == [[0, 1, 2, 3, 4]]  # one call, the unparseable one not in it
    assert handler.single == []
    assert handler.request_ids == {n: f"req-{n}" for n in range(5)}
    # The failed entry alone stays pending, its attempt counted; the rest are acked or dead.
    pending = await redis.xpending_range(STREAM, "testers", min="-", max="+", count=10)
    assert len(pending) == 1
    (failed_id,) = [p["message_id"] for p in pending]
    assert await redis.hget(c._attempts_key, failed_id) == "1"
    dead = await redis.xrange(c.dead_letter_stream)
    assert [f["dead_reason"][:11] for _, f in dead] == ["unparseable", "poison: 3 i"]

    # Retried alone in a batch of its own; at max_attempts it is dead-lettered.
    assert await c.process_batch(pending=True) == 1
    assert handler.batches[1:] == [[1]]
    dead = await redis.xrange(c.dead_letter_stream)
    assert len(dead) == 3
    assert "1 failed" in dead[2][1]["dead_reason"]
    assert (await redis.xpending(STREAM, "testers"))["pending"] == 0
    assert await redis.hget(c._attempts_key, failed_id) is None


async def test_a_retried_entry_that_succeeds_is_acknowledged_and_its_attempts_forgotten(
    redis: Redis,
) -> None:
    handler = Batched(failing={0})
    c = consumer(redis, handler, max_attempts=5)
    await c.ensure_group()
    for n in range(2):
        await redis.xadd(STREAM, event(n).to_stream_fields())  # type: ignore[arg-type]
    await c.process_batch()
    assert (await redis.xpending(STREAM, "testers"))["pending"] == 1
    handler.failing.clear()
    assert await c.process_batch(pending=True) == 1
    assert handler.batches == [[0, 1], [0]]
    assert (await redis.xpending(STREAM, "testers"))["pending"] == 0
    assert await redis.hlen(c._attempts_key) == 0
    assert await redis.xlen(c.dead_letter_stream) == 0


async def test_a_batch_handler_that_raises_fails_every_entry_of_the_batch(redis: Redis) -> None:
    class Broken(Batched):
        async def handle_batch(self, entries: Sequence[BatchEntry]) -> list[Exception | None]:
            self.batches.append([entry.event.data["n"] for entry in entries])
            raise RuntimeError("database down")

    handler = Broken()
    c = consumer(redis, handler, max_attempts=3)
    await c.ensure_group()
    for n in range(3):
        await redis.xadd(STREAM, event(n).to_stream_fields())  # type: ignore[arg-type]
    await c.process_batch()
    assert (await redis.xpending(STREAM, "testers"))["pending"] == 3
    assert sorted((await redis.hgetall(c._attempts_key)).values()) == ["1", "1", "1"]
    assert await redis.xlen(c.dead_letter_stream) == 0


async def test_entries_claimed_from_a_dead_consumer_go_through_the_batch_handler(
    redis: Redis,
) -> None:
    dead = consumer(redis, _ignore, name="dead")
    await dead.ensure_group()
    for n in range(3):
        await redis.xadd(STREAM, event(n).to_stream_fields())  # type: ignore[arg-type]
    await redis.xreadgroup("testers", "dead", {STREAM: ">"}, count=10)  # then it died
    handler = Batched(failing={2})
    live = consumer(redis, handler, name="live", claim_idle_ms=0)

    assert await live.claim_abandoned() == 3
    assert handler.batches == [[0, 1, 2]]
    pending = await redis.xpending_range(STREAM, "testers", min="-", max="+", count=10)
    assert [(p["consumer"], p["times_delivered"]) for p in pending] == [("live", 2)]


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_the_group_backlog_and_dead_letters_are_exposed_as_metrics(redis: Redis) -> None:
    # Operators' questions (docs/operations.md): how far behind is a group, how much is
    # unacknowledged, how many entries went to the dead letters.
    async def handler(e: EventEnvelope) -> None:
        if e.data["n"] == 0:
            raise PoisonMessage("never")

    c = consumer(redis, handler)
    labels = {"stream": STREAM, "group": "testers"}
    dead_before = sample("stream_dead_letters_total", **labels) or 0.0
    await c.ensure_group()
    for n in range(5):
        await redis.xadd(STREAM, event(n).to_stream_fields())  # type: ignore[arg-type]
    await c.observe_backlog()
    assert sample("stream_consumer_lag", **labels) == 5
    # Two read and not acknowledged yet: pending 2, lag 3.
    await redis.xreadgroup("testers", "c1", {STREAM: ">"}, count=2)
    await c.observe_backlog()
    assert sample("stream_consumer_lag", **labels) == 3
    assert sample("stream_consumer_pending", **labels) == 2
    await c.process_batch(pending=True)
    await c.process_batch()
    await c.observe_backlog()
    assert sample("stream_consumer_lag", **labels) == 0
    assert sample("stream_consumer_pending", **labels) == 0
    assert sample("stream_dead_letters_total", **labels) == dead_before + 1


async def test_consumer_resumes_after_restart_and_claims_a_dead_consumers_work(
    redis: Redis,
) -> None:
    handled: list[tuple[str, int]] = []

    async def crashing(e: EventEnvelope) -> None:
        raise asyncio.CancelledError  # the process dies mid-handler

    first = consumer(redis, crashing)
    await first.ensure_group()
    await redis.xadd(STREAM, event(7).to_stream_fields())  # type: ignore[arg-type]
    with pytest.raises(asyncio.CancelledError):
        await first.process_batch()

    async def recording(e: EventEnvelope) -> None:
        handled.append(("c2", e.data["n"]))

    other = consumer(redis, recording, "c2", claim_idle_ms=0)
    assert await other.claim_abandoned() == 1
    assert handled == [("c2", 7)]
    assert (await redis.xpending(STREAM, "testers"))["pending"] == 0


async def test_a_dead_consumer_is_removed_from_its_group_only_once_its_entries_are_claimed(
    redis: Redis,
) -> None:
    async def crashing(e: EventEnvelope) -> None:
        raise asyncio.CancelledError  # the replica is killed mid-handler

    dead = consumer(redis, crashing)
    await dead.ensure_group()
    await redis.xadd(STREAM, event(1).to_stream_fields())  # type: ignore[arg-type]
    with pytest.raises(asyncio.CancelledError):
        await dead.process_batch()
    handled: list[int] = []

    async def recording(e: EventEnvelope) -> None:
        handled.append(e.data["n"])

    live = consumer(
        redis, recording, "live", block_ms=10, claim_idle_ms=0, dead_consumer_idle_ms=300
    )
    await asyncio.sleep(0.4)
    # Idle long enough, but it still holds an entry: removing it would lose the entry.
    assert await live.remove_dead_consumers() == []
    assert await live.claim_abandoned() == 1
    assert handled == [1]
    # A replica that read just now stays, however quiet its stream.
    recent = consumer(redis, recording, "recent")
    await redis.xadd(STREAM, event(2).to_stream_fields())  # type: ignore[arg-type]
    assert await recent.process_batch(block_ms=1) == 1
    assert await live.remove_dead_consumers() == ["c1"]
    names = {c["name"] for c in await redis.xinfo_consumers(STREAM, "testers")}
    assert names == {"live", "recent"}
    assert (await redis.xpending(STREAM, "testers"))["pending"] == 0


async def test_without_a_threshold_no_consumer_is_ever_removed(redis: Redis) -> None:
    async def handler(e: EventEnvelope) -> None:
        return None

    idle = consumer(redis, handler)
    await idle.ensure_group()
    await redis.xadd(STREAM, event(1).to_stream_fields())  # type: ignore[arg-type]
    assert await idle.process_batch(block_ms=1) == 1
    await asyncio.sleep(0.1)
    other = consumer(redis, handler, "c2")
    assert await other.remove_dead_consumers() == []
    assert len(await redis.xinfo_consumers(STREAM, "testers")) == 1


def test_a_threshold_a_live_consumer_could_reach_is_refused() -> None:
    with pytest.raises(ValueError, match="block_ms"):
        StreamConsumer(
            redis=Redis(),
            stream=STREAM,
            group="testers",
            consumer="c1",
            handler=_ignore,
            block_ms=1000,
            dead_consumer_idle_ms=1000,
        )


async def _ignore(e: EventEnvelope) -> None:
    return None


async def test_run_loop_consumes_until_stopped(redis: Redis) -> None:
    got = asyncio.Event()

    async def handler(e: EventEnvelope) -> None:
        got.set()

    stop = asyncio.Event()
    c = consumer(redis, handler)
    task = asyncio.create_task(c.run(stop))
    await asyncio.sleep(0.1)
    await redis.xadd(STREAM, event(1).to_stream_fields())  # type: ignore[arg-type]
    await asyncio.wait_for(got.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)


def round_trips(monkeypatch: pytest.MonkeyPatch, redis: Redis) -> list[tuple[str, ...]]:
    """What ``redis`` sends from now on, one item per round trip: a command's words (the
    stream ids of a read included), or ``("PIPELINE",)`` for a pipeline."""
    sent: list[tuple[str, ...]] = []
    execute, pipeline = redis.execute_command, redis.pipeline

    async def counted(*args: Any, **options: Any) -> Any:
        sent.append(tuple(str(arg) for arg in args))
        return await execute(*args, **options)

    def counted_pipeline(*args: Any, **options: Any) -> Any:
        sent.append(("PIPELINE",))
        return pipeline(*args, **options)

    monkeypatch.setattr(redis, "execute_command", counted)
    monkeypatch.setattr(redis, "pipeline", counted_pipeline)
    return sent


async def test_a_batch_of_new_entries_costs_one_read_and_one_acknowledgement(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each round trip to Redis is CPU in the consumer and in Redis (issue 17): handled
    # entries are acknowledged together, and a first delivery has no attempts to forget.
    c = consumer(redis, _ignore)
    await c.ensure_group()
    for n in range(5):
        await redis.xadd(STREAM, event(n).to_stream_fields())  # type: ignore[arg-type]
    sent = round_trips(monkeypatch, redis)
    assert await c.process_batch() == 5
    assert [words[0] for words in sent] == ["XREADGROUP", "XACK"]
    assert len(sent[1]) == 3 + 5  # XACK stream group and the five ids
    assert (await redis.xpending(STREAM, "testers"))["pending"] == 0


async def test_the_run_loop_reads_its_pending_entries_only_after_a_failure(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    handled: list[int] = []
    failed_once: set[int] = set()

    async def handler(e: EventEnvelope) -> None:
        n = e.data["n"]
        if n == 2 and n not in failed_once:
            failed_once.add(n)
            raise RuntimeError("first try fails")
        handled.append(n)

    sent = round_trips(monkeypatch, redis)
    stop = asyncio.Event()
    c = consumer(redis, handler, retry_delay_s=0.01)
    task = asyncio.create_task(c.run(stop))
    try:
        for n in range(4):
            await redis.xadd(STREAM, event(n).to_stream_fields())  # type: ignore[arg-type]
            await until(lambda n=n: _handled(handled, n))  # type: ignore[misc]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert sorted(handled) == [0, 1, 2, 3]
    group_creations = [words for words in sent if words[0].startswith("XGROUP")]
    pending_reads = [words for words in sent if words[0] == "XREADGROUP" and words[-1] == "0"]
    new_reads = [words for words in sent if words[0] == "XREADGROUP" and words[-1] == ">"]
    assert len(group_creations) == 1
    # One at the start (what a previous run left) and one for the retry of entry 2:
    # not one before every read of new entries.
    assert len(pending_reads) == 2
    assert len(new_reads) >= 4
    assert await redis.hlen(c._attempts_key) == 0  # the retried entry's count is gone
    assert (await redis.xpending(STREAM, "testers"))["pending"] == 0


async def _handled(handled: list[int], n: int) -> bool:
    return n in handled


async def test_a_lingering_consumer_takes_a_burst_in_one_read(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # linger_s: after a read that found entries the loop waits before reading again, so
    # the entries a checkout publishes one after the other cost one read and one XACK.
    handled: list[int] = []

    async def handler(e: EventEnvelope) -> None:
        handled.append(e.data["n"])

    sent = round_trips(monkeypatch, redis)
    stop = asyncio.Event()
    c = consumer(redis, handler, linger_s=1.0)
    task = asyncio.create_task(c.run(stop))
    try:
        await redis.xadd(STREAM, event(0).to_stream_fields())  # type: ignore[arg-type]
        await until(lambda: _handled(handled, 0))
        reads_before = sum(1 for words in sent if words[0] == "XREADGROUP")
        for n in (1, 2, 3):  # one at a time, while the consumer lingers
            await redis.xadd(STREAM, event(n).to_stream_fields())  # type: ignore[arg-type]
        await until(lambda: _handled(handled, 3))
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert handled == [0, 1, 2, 3]
    reads = [words for words in sent if words[0] == "XREADGROUP"]
    acks = [words for words in sent if words[0] == "XACK"]
    assert len(reads) - reads_before <= 2  # the burst's read (and the idle one after it)
    assert [len(words) - 3 for words in acks] == [1, 3]  # entry 0, then the burst at once
    assert (await redis.xpending(STREAM, "testers"))["pending"] == 0


async def test_a_stop_ends_the_linger(redis: Redis) -> None:
    got = asyncio.Event()

    async def handler(e: EventEnvelope) -> None:
        got.set()

    stop = asyncio.Event()
    c = consumer(redis, handler, linger_s=600.0)
    task = asyncio.create_task(c.run(stop))
    await redis.xadd(STREAM, event(1).to_stream_fields())  # type: ignore[arg-type]
    await asyncio.wait_for(got.wait(), 5)
    stop.set()  # the consumer is lingering now: it stops at once, not in ten minutes
    await asyncio.wait_for(task, 5)
