"""A Redis restart costs no request: pooled connections it broke are replaced on use.

Each test runs its own real redis-server (the harness's binary and start-up code), so
restarting it disturbs no other test.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from storefront_kit.health import health_router, redis_check
from storefront_kit.redis import create_redis
from storefront_stack import infra
from storefront_stack.processes import free_port

POOLED = 16


class RestartableRedis:
    """A redis-server that can be stopped and started again on the same port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.server: infra.Server | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.server = infra.start_redis(self.data_dir, self.port, persistent=False)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def client(redis_server: RestartableRedis) -> AsyncIterator[Redis]:
    redis = create_redis(redis_server.url, max_connections=POOLED)
    yield redis
    await redis.aclose()


async def _fill_pool(redis: Redis) -> None:
    """Open ``POOLED`` connections at once, so every one of them is in the pool."""
    await asyncio.gather(*(redis.blpop([f"fill:{i}"], timeout=0.2) for i in range(POOLED)))
    assert len(redis.connection_pool._available_connections) == POOLED  # type: ignore[attr-defined]


async def test_every_pooled_connection_survives_a_restart(
    redis_server: RestartableRedis, client: Redis
) -> None:
    await _fill_pool(client)
    redis_server.restart()
    # Every command below runs on a connection the restart broke.
    results = await asyncio.gather(
        *(client.set(f"after:{i}", i) for i in range(POOLED)), return_exceptions=True
    )
    assert results == [True] * POOLED
    assert await client.get("after:3") == "3"


async def test_without_the_retry_the_first_commands_after_a_restart_fail(
    redis_server: RestartableRedis,
) -> None:
    """What the retry fixes: a plain pool hands out the broken connections."""
    pool = BlockingConnectionPool.from_url(redis_server.url, max_connections=POOLED)
    plain = Redis.from_pool(pool)
    try:
        await _fill_pool(plain)
        redis_server.restart()
        results = await asyncio.gather(
            *(plain.set(f"after:{i}", i) for i in range(POOLED)), return_exceptions=True
        )
        assert any(isinstance(result, RedisConnectionError) for result in results), results
    finally:
        await plain.aclose()


async def test_under_load_readiness_and_the_first_requests_after_a_restart_succeed(
    redis_server: RestartableRedis, client: Redis
) -> None:
    """Steady load runs through a restart; once Redis is back, no request fails.

    A few workers keep a few connections busy (they fail while Redis is down, as they
    must); the rest of the pool sits idle through the restart, as most of a service's
    pool does, and the burst that follows needs every one of them.
    """
    app = FastAPI()
    app.include_router(health_router(lambda request: [redis_check(client)]))
    await _fill_pool(client)
    stop = asyncio.Event()
    restarted = asyncio.Event()
    after_restart: list[object] = []

    async def request(key: str, value: int) -> object:
        try:
            await client.set(key, value)
            return await client.get(key) == str(value)
        except RedisConnectionError as exc:
            return exc

    async def load(worker: int) -> None:
        counter = 0
        while not stop.is_set():
            counter += 1
            back = restarted.is_set()
            outcome = await request(f"load:{worker}", counter)
            if back:
                after_restart.append(outcome)  # while Redis was down, failures are expected
            await asyncio.sleep(0.005)

    workers = [asyncio.create_task(load(i)) for i in range(4)]
    try:
        await asyncio.sleep(0.1)
        await asyncio.to_thread(redis_server.restart)
        restarted.set()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kit") as http:
            ready = await http.get("/health/ready")
        assert ready.status_code == 200, ready.text
        after_restart += await asyncio.gather(*(request(f"burst:{i}", i) for i in range(POOLED)))
        while len(after_restart) < POOLED * 4:
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*workers)
    failures = [outcome for outcome in after_restart if outcome is not True]
    assert not failures, failures[:3]
