"""The dependency breaker: trips at its threshold, refuses at once while open, lets one
probe through when half-open, and counts only what its caller calls a failure."""

import asyncio

import pytest

from storefront_kit.breaker import Breaker, BreakerOpen


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Down(Exception):
    pass


class Refused(Exception):
    pass


def make(clock: Clock, threshold: int = 3) -> Breaker:
    return Breaker(
        "dep",
        failure_threshold=threshold,
        reset_timeout_s=2.0,
        is_failure=lambda exc: isinstance(exc, Down),
        clock=clock,
    )


async def fail() -> None:
    raise Down


async def ok() -> str:
    return "ok"


async def test_it_opens_at_the_threshold_of_consecutive_failures_and_refuses_without_calling() -> (
    None
):
    clock = Clock()
    breaker = make(clock)
    calls = 0

    async def counted() -> None:
        nonlocal calls
        calls += 1
        raise Down

    for _ in range(2):
        with pytest.raises(Down):
            await breaker.call(counted, timeout_s=None)
    assert breaker.state == "closed"
    with pytest.raises(Down):
        await breaker.call(counted, timeout_s=None)
    assert breaker.state == "open"

    clock.now += 0.5
    with pytest.raises(BreakerOpen) as refused:
        await breaker.call(counted, timeout_s=None)
    assert calls == 3
    assert refused.value.retry_after_s == pytest.approx(1.5)
    assert refused.value.retry_after == 2


async def test_a_success_resets_the_count_of_consecutive_failures() -> None:
    breaker = make(Clock())
    for _ in range(5):
        with pytest.raises(Down):
            await breaker.call(fail, timeout_s=None)
        with pytest.raises(Down):
            await breaker.call(fail, timeout_s=None)
        assert await breaker.call(ok, timeout_s=None) == "ok"
    assert breaker.state == "closed"


async def test_answers_that_are_not_failures_do_not_trip_it() -> None:
    breaker = make(Clock(), threshold=1)

    async def refused() -> None:
        raise Refused

    for _ in range(3):
        with pytest.raises(Refused):
            await breaker.call(refused, timeout_s=None)
    assert breaker.state == "closed"


async def test_a_timeout_counts_as_a_failure() -> None:
    breaker = make(Clock(), threshold=1)

    async def hangs() -> None:
        await asyncio.Event().wait()

    with pytest.raises(TimeoutError):
        await breaker.call(hangs, timeout_s=0.01)
    assert breaker.state == "open"


async def test_half_open_lets_exactly_one_probe_through_and_its_success_closes_it() -> None:
    clock = Clock()
    breaker = make(clock, threshold=1)
    with pytest.raises(Down):
        await breaker.call(fail, timeout_s=None)
    clock.now += 2.0
    assert breaker.state == "half_open"

    release = asyncio.Event()
    entered = 0

    async def slow_probe() -> str:
        nonlocal entered
        entered += 1
        await release.wait()
        return "ok"

    probe = asyncio.create_task(breaker.call(slow_probe, timeout_s=None))
    await asyncio.sleep(0)
    others = await asyncio.gather(
        *(breaker.call(slow_probe, timeout_s=None) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(o, BreakerOpen) for o in others)
    assert breaker.is_open
    release.set()
    assert await probe == "ok"
    assert entered == 1
    assert breaker.state == "closed"
    assert await breaker.call(ok, timeout_s=None) == "ok"


async def test_a_failed_probe_opens_it_for_another_reset_period() -> None:
    clock = Clock()
    breaker = make(clock, threshold=1)
    with pytest.raises(Down):
        await breaker.call(fail, timeout_s=None)
    clock.now += 2.0
    with pytest.raises(Down):
        await breaker.call(fail, timeout_s=None)
    assert breaker.state == "open"
    assert breaker.retry_after_s() == pytest.approx(2.0)


async def test_a_cancelled_probe_lets_the_next_call_probe() -> None:
    clock = Clock()
    breaker = make(clock, threshold=1)
    with pytest.raises(Down):
        await breaker.call(fail, timeout_s=None)
    clock.now += 2.0
    task = asyncio.create_task(breaker.call(asyncio.Event().wait, timeout_s=None))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await breaker.call(ok, timeout_s=None) == "ok"
    assert breaker.state == "closed"


async def test_calls_in_flight_when_it_opens_are_released_and_later_ones_fail_fast() -> None:
    breaker = make(Clock(), threshold=3)

    async def in_flight() -> None:
        await asyncio.sleep(0)
        raise Down

    results = await asyncio.gather(
        *(breaker.call(in_flight, timeout_s=None) for _ in range(20)), return_exceptions=True
    )
    # The third failure opens it; the 17 calls still in flight end then, as refused.
    assert [type(r) for r in results] == [Down] * 3 + [BreakerOpen] * 17
    assert breaker.state == "open"
    with pytest.raises(BreakerOpen):
        await breaker.call(ok, timeout_s=None)


async def test_a_call_released_by_the_opening_is_not_counted_and_other_cancels_pass() -> None:
    breaker = make(Clock(), threshold=1)
    started = asyncio.Event()

    async def hangs() -> None:
        started.set()
        await asyncio.Event().wait()

    released = asyncio.create_task(breaker.call(hangs, timeout_s=None))
    await started.wait()
    breaker.trip()
    with pytest.raises(BreakerOpen):
        await released
    assert released.cancelling() == 0  # nothing left pending for the caller's next await
    breaker.record_success()

    # A cancellation from elsewhere stays a cancellation.
    started.clear()
    cancelled = asyncio.create_task(breaker.call(hangs, timeout_s=None))
    await started.wait()
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert breaker.state == "closed"


async def test_the_half_open_probe_has_its_own_shorter_deadline() -> None:
    clock = Clock()
    breaker = make(clock, threshold=1)
    with pytest.raises(Down):
        await breaker.call(fail, timeout_s=None)
    clock.now += 2.0

    async def hangs() -> None:
        await asyncio.Event().wait()

    # Without the probe deadline this would wait the whole (here: endless) timeout.
    with pytest.raises(TimeoutError):
        await breaker.call(hangs, timeout_s=None, probe_timeout_s=0.01)
    assert breaker.state == "open"
