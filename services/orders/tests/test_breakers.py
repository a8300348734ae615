"""The asyncio adapter over pybreaker, against real Redis and real concurrency."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from orders_service.clients.breakers import AsyncCircuitBreaker, CircuitOpenError, build_breaker
from storefront_kit.redis import create_redis, create_sync_redis

# On one Redis server and on a three-master Redis Cluster (docs/redis.md).
pytestmark = pytest.mark.redis_modes


class ProviderDown(Exception):
    """A 5xx or a timeout from the provider."""


class CardDeclined(Exception):
    """A business 4xx: the provider works fine."""


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[SyncRedis]:
    client = create_sync_redis(redis_url)
    yield client
    client.close()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_url, socket_timeout=None, decode_responses=False)
    # As a service's readiness check does before traffic: a cluster client learns its
    # nodes on its first command, which would hold up the first burst of calls.
    await client.ping()
    yield client
    await client.aclose()


def make(
    sync_redis: SyncRedis,
    redis: Redis,
    name: str,
    *,
    reset: float = 0.5,
    opened: list[str] | None = None,
) -> AsyncCircuitBreaker:
    async def on_open(breaker: str) -> None:
        if opened is not None:
            opened.append(breaker)

    return build_breaker(
        name,
        sync_redis=sync_redis,
        redis=redis,
        fail_max=3,
        reset_timeout_s=reset,
        is_business_error=lambda exc: isinstance(exc, CardDeclined),
        on_open=on_open,
    )


def unique() -> str:
    return f"payments-{uuid.uuid4().hex[:8]}"


async def failing() -> None:
    await asyncio.sleep(0.01)
    raise ProviderDown


async def declining() -> None:
    raise CardDeclined


async def test_breaker_opens_at_the_threshold_and_alerts_once(
    sync_redis: SyncRedis, redis: Redis
) -> None:
    opened: list[str] = []
    breaker = make(sync_redis, redis, unique(), opened=opened)
    for _ in range(2):
        with pytest.raises(ProviderDown):
            await breaker.call(failing)
    assert await breaker.state() == "closed"
    with pytest.raises(ProviderDown):
        await breaker.call(failing)
    assert await breaker.state() == "open"
    assert opened == [breaker.name]


async def test_open_breaker_fails_fast_without_calling(sync_redis: SyncRedis, redis: Redis) -> None:
    breaker = make(sync_redis, redis, unique(), reset=30)
    for _ in range(3):
        with pytest.raises(ProviderDown):
            await breaker.call(failing)
    calls = 0

    async def counted() -> None:
        nonlocal calls
        calls += 1

    results = await asyncio.gather(
        *(breaker.call(counted) for _ in range(50)), return_exceptions=True
    )
    assert all(isinstance(r, CircuitOpenError) for r in results)
    assert calls == 0


async def test_business_errors_never_open_the_breaker(sync_redis: SyncRedis, redis: Redis) -> None:
    breaker = make(sync_redis, redis, unique())
    for _ in range(10):
        with pytest.raises(CardDeclined):
            await breaker.call(declining)
    assert await breaker.state() == "closed"


async def test_a_success_resets_the_failure_count(sync_redis: SyncRedis, redis: Redis) -> None:
    breaker = make(sync_redis, redis, unique())

    async def ok() -> str:
        return "ok"

    for _ in range(2):
        with pytest.raises(ProviderDown):
            await breaker.call(failing)
    assert await breaker.call(ok) == "ok"
    for _ in range(2):
        with pytest.raises(ProviderDown):
            await breaker.call(failing)
    assert await breaker.state() == "closed"


async def test_half_open_lets_exactly_one_trial_through_then_closes(
    sync_redis: SyncRedis, redis: Redis
) -> None:
    breaker = make(sync_redis, redis, unique(), reset=0.3)
    for _ in range(3):
        with pytest.raises(ProviderDown):
            await breaker.call(failing)
    await asyncio.sleep(0.35)
    calls = 0

    async def slow_ok() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return "ok"

    results = await asyncio.gather(
        *(breaker.call(slow_ok) for _ in range(20)), return_exceptions=True
    )
    assert calls == 1
    assert results.count("ok") == 1
    assert sum(isinstance(r, CircuitOpenError) for r in results) == 19
    assert await breaker.state() == "closed"


async def test_failed_trial_opens_the_breaker_again(sync_redis: SyncRedis, redis: Redis) -> None:
    # Redis storage keeps opened_at in whole seconds: the reset timeout must exceed 1 s.
    breaker = make(sync_redis, redis, unique(), reset=2.0)
    for _ in range(3):
        with pytest.raises(ProviderDown):
            await breaker.call(failing)
    await asyncio.sleep(2.1)
    with pytest.raises(ProviderDown):
        await breaker.call(failing)
    assert await breaker.state() == "open"
    with pytest.raises(CircuitOpenError):
        await breaker.call(failing)


async def test_state_is_shared_between_replicas(sync_redis: SyncRedis, redis: Redis) -> None:
    name = unique()
    replica_a = make(sync_redis, redis, name, reset=30)
    replica_b = make(sync_redis, redis, name, reset=30)
    for _ in range(3):
        with pytest.raises(ProviderDown):
            await replica_a.call(failing)
    assert await replica_b.state() == "open"
    with pytest.raises(CircuitOpenError):
        await replica_b.call(failing)


async def test_concurrent_failures_trip_once_and_the_rest_fail_fast(
    sync_redis: SyncRedis, redis: Redis
) -> None:
    opened: list[str] = []
    breaker = make(sync_redis, redis, unique(), reset=30, opened=opened)
    first = await asyncio.gather(
        *(breaker.call(failing) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, ProviderDown) for r in first), first
    assert await breaker.state() == "open"
    assert opened == [breaker.name]
    later = await asyncio.gather(
        *(breaker.call(failing) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, CircuitOpenError) for r in later)
