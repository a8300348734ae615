"""The dependency watch: it opens the breaker after its misses (and not before), releases
the calls in flight when it does, closes it when the dependency answers again, and is
the only probe of a watched breaker.

The first tests drive ``check()`` with a ping of their own; the last ones freeze a real
redis-server of their own with SIGSTOP (what a hung server looks like to a client: the
connection is accepted, nothing is answered) and resume it with SIGCONT in a ``finally``.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from storefront_kit.breaker import Breaker, BreakerOpen
from storefront_kit.redis import create_redis
from storefront_kit.watch import DependencyWatch, redis_ping
from storefront_stack import infra
from storefront_stack.processes import frozen

#: What no answer in these tests may come near: the calls' own (old) timeouts.
LONG_S = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Switch:
    """A ping that answers while ``up`` and raises otherwise; counts its calls."""

    def __init__(self) -> None:
        self.up = True
        self.calls = 0

    async def __call__(self) -> bool:
        self.calls += 1
        if not self.up:
            raise ConnectionError("down")
        return True


def watched(clock: Clock, switch: Switch, misses: int = 3) -> tuple[Breaker, DependencyWatch]:
    breaker = Breaker("dep", failure_threshold=2, reset_timeout_s=2.0, clock=clock)
    watch = DependencyWatch(breaker, switch, interval_s=0.25, timeout_s=0.15, misses=misses)
    breaker.attach_watch(watch.interval_s)
    return breaker, watch


async def test_it_trips_the_breaker_after_its_misses_in_a_row_and_not_before() -> None:
    switch = Switch()
    breaker, watch = watched(Clock(), switch, misses=3)
    switch.up = False
    assert await watch.check() is False
    assert await watch.check() is False
    assert breaker.state == "closed"
    switch.up = True
    assert await watch.check() is True  # an answer resets the count
    switch.up = False
    for _ in range(2):
        await watch.check()
    assert breaker.state == "closed"
    await watch.check()
    assert breaker.state == "open"
    assert breaker.tripped
    with pytest.raises(BreakerOpen) as refused:
        await breaker.call(switch, timeout_s=None)
    # Retry after the next ping, not after the breaker's reset time.
    assert refused.value.retry_after_s == pytest.approx(watch.interval_s)


async def test_a_ping_too_slow_is_a_miss() -> None:
    breaker = Breaker("dep")
    release = asyncio.Event()

    async def hangs() -> None:
        await release.wait()

    watch = DependencyWatch(breaker, hangs, interval_s=0.05, timeout_s=0.01, misses=1)
    assert await watch.check() is False
    assert breaker.state == "open"


async def test_a_ping_answering_false_is_a_miss() -> None:
    breaker = Breaker("dep")

    async def unreachable() -> bool:
        return False  # what the Elasticsearch client's ping() answers when it cannot connect

    watch = DependencyWatch(breaker, unreachable, interval_s=0.05, timeout_s=0.05, misses=1)
    assert await watch.check() is False
    assert breaker.is_open


async def test_a_watched_breaker_is_never_half_open_and_its_watch_closes_it() -> None:
    clock = Clock()
    switch = Switch()
    breaker, watch = watched(clock, switch, misses=1)
    switch.up = False
    await watch.check()
    clock.now += 60  # long past the reset time: no call may probe
    assert breaker.state == "open"
    with pytest.raises(BreakerOpen):
        await breaker.call(switch, timeout_s=None)
    calls = switch.calls
    switch.up = True
    assert await watch.check() is True
    assert switch.calls == calls + 1
    assert breaker.state == "closed"
    assert await breaker.call(switch, timeout_s=None) is True


async def test_a_breaker_opened_by_calls_is_closed_by_a_ping_only_after_its_reset_time() -> None:
    clock = Clock()
    switch = Switch()
    breaker, watch = watched(clock, switch)

    async def fails() -> None:
        raise ConnectionError("refused")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            await breaker.call(fails, timeout_s=None)
    assert breaker.state == "open"
    await watch.check()  # the ping answers, but the calls failing is the newer news
    assert breaker.state == "open"
    clock.now += 2.0
    assert breaker.state == "open"  # not half-open: watched
    await watch.check()
    assert breaker.state == "closed"


async def test_the_calls_in_flight_are_released_when_it_trips_and_their_outcome_not_counted() -> (
    None
):
    switch = Switch()
    breaker, watch = watched(Clock(), switch, misses=1)
    started = asyncio.Event()
    cancelled = 0

    async def hangs() -> None:
        nonlocal cancelled
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled += 1
            raise

    in_flight = [asyncio.create_task(breaker.call(hangs, timeout_s=LONG_S)) for _ in range(5)]
    waiter = asyncio.create_task(breaker.wait_open())
    await started.wait()
    assert not any(task.done() for task in [*in_flight, waiter])
    switch.up = False
    await watch.check()
    results = await asyncio.gather(*in_flight, return_exceptions=True)
    await waiter
    assert all(isinstance(result, BreakerOpen) for result in results), results
    await asyncio.sleep(0)  # the released operations wind down in the background
    assert cancelled == 5
    switch.up = True
    await watch.check()
    assert breaker.state == "closed"
    assert breaker._consecutive == 0  # no released call counted


async def test_wait_open_returns_at_once_while_open() -> None:
    breaker = Breaker("dep", failure_threshold=1)
    breaker.trip()
    await asyncio.wait_for(breaker.wait_open(), timeout=LONG_S)
    assert breaker.is_open


async def test_start_and_stop_attach_and_detach_it() -> None:
    switch = Switch()
    breaker = Breaker("dep", reset_timeout_s=2.0)
    watch = DependencyWatch(breaker, switch, interval_s=0.01, timeout_s=0.01, misses=1)
    watch.start()
    assert breaker.watched
    while switch.calls < 3:
        await asyncio.sleep(0.01)
    await watch.stop()
    assert not breaker.watched
    calls = switch.calls
    await asyncio.sleep(0.05)
    assert switch.calls == calls


# --- a real Redis, frozen -----------------------------------------------------------


@pytest.fixture
def frozen_redis(tmp_path: Path) -> Iterator[tuple[str, int]]:
    with infra.started_redis(tmp_path / "redis") as url_and_pid:
        yield url_and_pid


@pytest.fixture
async def redis(frozen_redis: tuple[str, int]) -> AsyncIterator[Redis]:
    client = create_redis(frozen_redis[0], socket_timeout=LONG_S, pool_timeout=LONG_S)
    yield client
    await client.aclose()


def redis_breaker() -> Breaker:
    return Breaker(
        "redis",
        failure_threshold=1000,  # the watch alone opens it here
        reset_timeout_s=LONG_S,
        is_failure=lambda exc: isinstance(exc, RedisConnectionError | RedisTimeoutError),
    )


async def _until(check: object, limit_s: float = LONG_S) -> None:
    async with asyncio.timeout(limit_s):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_a_frozen_redis_trips_the_breaker_and_releases_the_command_waiting_on_it(
    redis: Redis, frozen_redis: tuple[str, int]
) -> None:
    breaker = redis_breaker()
    watch = DependencyWatch(breaker, redis_ping(redis), interval_s=0.05, timeout_s=0.05, misses=2)
    await redis.set("k", "v")
    watch.start()
    try:
        with frozen(frozen_redis[1]):
            # Sent to the frozen server with a 30 s deadline: only the watch can end it.
            waiting = asyncio.create_task(breaker.call(lambda: redis.get("k"), timeout_s=LONG_S))
            with pytest.raises(BreakerOpen):
                await asyncio.wait_for(waiting, timeout=LONG_S / 2)
            assert breaker.tripped
            assert watch.consecutive_misses >= watch.misses
            with pytest.raises(BreakerOpen):
                await breaker.call(lambda: redis.get("k"), timeout_s=LONG_S)
        # Thawed: the watch's next ping closes the breaker, no call had to probe.
        await _until(lambda: breaker.state == "closed")
        assert await breaker.call(lambda: redis.get("k"), timeout_s=LONG_S) == "v"
    finally:
        await watch.stop()


async def test_without_a_watch_the_same_command_waits_for_its_own_deadline(
    redis: Redis, frozen_redis: tuple[str, int]
) -> None:
    # The counterpart of the test above: what the watch saves.
    breaker = redis_breaker()
    await redis.set("k", "v")
    with frozen(frozen_redis[1]), pytest.raises(TimeoutError):
        await breaker.call(lambda: redis.get("k"), timeout_s=0.2)
    assert breaker.state == "closed"
