"""A per-process circuit breaker for "is this dependency reachable now?".

One :class:`Breaker` per dependency (Redis, Elasticsearch) per process. It opens after
``failure_threshold`` consecutive failures (timeouts count), refuses every call at once
while open (:class:`BreakerOpen`, carrying the seconds until the next probe), and after
``reset_timeout_s`` lets exactly one call through as a probe (half-open): its success
closes the breaker, its failure opens it again for another ``reset_timeout_s``.

A :class:`~storefront_kit.watch.DependencyWatch` attached to the breaker
(:meth:`Breaker.attach_watch`) finds an outage without waiting for calls to fail: it
pings the dependency in the background and :meth:`Breaker.trip` opens the breaker after
a few missed pings. A watched breaker never lets a call probe (a probe waits out its
deadline when the dependency is still down): the watch's ping is the probe, and the
watch closes the breaker when the dependency answers again (:meth:`Breaker.ping_succeeded`).

Calls in flight when the breaker opens are released at once with :class:`BreakerOpen`
(the calling task is cancelled, as ``asyncio.timeout`` does, and the cancellation turned
into :class:`BreakerOpen`): a request that started a moment before the outage was found
does not wait out its timeout. :meth:`Breaker.wait_open` lets other waits (a checkout
waiting for its saga) end the same way.

Process-local on purpose: whether Redis answers is a question each process can answer
for itself in a few milliseconds, and the shared store for breaker state would be the
very Redis it is about. Only failures that mean "unreachable or too slow" are counted
(timeouts, and what the caller's ``is_failure`` says); a refused command or a 4xx is an
answer from a reachable dependency.

Exception tree::

    Exception
    └── BreakerOpen     the dependency is known to be down (the call was not made, or was
                        given up when the breaker opened); retry after ``retry_after_s``
"""

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar

from prometheus_client import Gauge

from storefront_kit.logging import get_logger

__all__ = ["BREAKER_STATE", "Breaker", "BreakerOpen", "BreakerState"]

logger = get_logger(__name__)

T = TypeVar("T")
BreakerState = Literal["closed", "open", "half_open"]

#: 0 closed, 1 half-open, 2 open; one series per dependency.
BREAKER_STATE = Gauge(
    "dependency_breaker_state",
    "Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open.",
    ["dependency"],
)
_GAUGE_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class BreakerOpen(Exception):
    """The dependency is known to be down: the call was not made (or, in flight when the
    breaker opened, given up)."""

    def __init__(self, name: str, retry_after_s: float) -> None:
        super().__init__(f"{name} is unavailable (circuit open)")
        self.name = name
        self.retry_after_s = retry_after_s

    @property
    def retry_after(self) -> int:
        """Whole seconds for a ``Retry-After`` header (at least 1)."""
        return max(1, math.ceil(self.retry_after_s))


class Breaker:
    """Consecutive-failure breaker with a single half-open probe; asyncio-safe."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 3,
        reset_timeout_s: float = 2.0,
        is_failure: Callable[[BaseException], bool] = lambda exc: True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_timeout_s <= 0:
            raise ValueError("failure_threshold must be ≥ 1 and reset_timeout_s > 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.is_failure = is_failure
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probing = False
        #: Opened by :meth:`trip` (a watch found the dependency down), not by calls.
        self._tripped = False
        #: The attached watch's ping interval (None: no watch; calls probe when half-open).
        self._watch_interval_s: float | None = None
        #: Resolved when the breaker opens; None while nobody waits for that.
        self._opened: asyncio.Future[None] | None = None
        #: Tasks with a call in flight; True once the opening cancelled the call.
        self._in_flight: dict[asyncio.Task[Any], bool] = {}
        self._gauge = BREAKER_STATE.labels(dependency=name)
        self._gauge.set(0)

    @property
    def state(self) -> BreakerState:
        """``closed``, ``open`` (refusing) or ``half_open`` (a probe may go, or is going).

        A watched breaker is never half-open: its watch's ping is the probe."""
        if self._opened_at is None:
            return "closed"
        if self._watch_interval_s is not None:
            return "open"
        if self._clock() - self._opened_at < self.reset_timeout_s:
            return "open"
        return "half_open"

    @property
    def tripped(self) -> bool:
        """True while held open by :meth:`trip` (until the watch's ping answers)."""
        return self._tripped

    @property
    def watched(self) -> bool:
        """True when a watch decides when the breaker closes again."""
        return self._watch_interval_s is not None

    def attach_watch(self, interval_s: float) -> None:
        """A watch pinging every ``interval_s`` now decides recovery: no call probes any
        more, and the watch's ping closes the breaker (:meth:`ping_succeeded`)."""
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self._watch_interval_s = interval_s

    def detach_watch(self) -> None:
        """Back to half-open probes by calls (the watch stopped)."""
        self._watch_interval_s = None

    @property
    def is_open(self) -> bool:
        """True while calls would be refused without being tried."""
        state = self.state
        return state == "open" or (state == "half_open" and self._probing)

    def retry_after_s(self) -> float:
        """Seconds until the next probe may go (0 when calls are allowed)."""
        if self._opened_at is None:
            return 0.0
        remaining = max(0.0, self._opened_at + self.reset_timeout_s - self._clock())
        if self._watch_interval_s is None:
            return remaining
        # Watched: the next ping is the probe; one the watch opened may close at once.
        if self._tripped:
            return self._watch_interval_s
        return max(remaining, self._watch_interval_s)

    def trip(self) -> None:
        """Open now, whatever the count of failures (a watch found the dependency down):
        calls are refused, and the calls in flight are released, at once."""
        if self._opened_at is None or not self._tripped:
            logger.warning("breaker_tripped", dependency=self.name)
        self._tripped = True
        self._probing = False
        self._open()

    def ping_succeeded(self) -> None:
        """The watch's ping answered: close the breaker if the watch opened it, or if
        calls opened it at least ``reset_timeout_s`` ago (the ping was its probe)."""
        if self._opened_at is None:
            return
        if self._tripped or self._clock() - self._opened_at >= self.reset_timeout_s:
            self.record_success()

    async def wait_open(self) -> None:
        """Return as soon as the breaker is open (at once if it is)."""
        if self._opened_at is not None:
            return
        await asyncio.shield(self._open_future())

    def _open_future(self) -> "asyncio.Future[None]":
        loop = asyncio.get_running_loop()
        future = self._opened
        if future is None or future.done() or future.get_loop() is not loop:
            future = self._opened = loop.create_future()
        return future

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._gauge.set(_GAUGE_VALUE["open"])
        future, self._opened = self._opened, None
        if future is not None and not future.done():
            future.set_result(None)
        self._release_in_flight()

    def before_call(self) -> bool:
        """Admit a call or raise :class:`BreakerOpen`; True when the call is the probe."""
        state = self.state
        if state == "closed":
            return False
        if state == "half_open" and not self._probing:
            self._probing = True
            self._gauge.set(_GAUGE_VALUE["half_open"])
            return True
        # A probe is in flight: the others wait for its verdict, not for the dependency.
        raise BreakerOpen(self.name, self.retry_after_s() or self.reset_timeout_s)

    def record_success(self, *, probe: bool = False) -> None:
        """The dependency answered."""
        if probe:
            self._probing = False
        if self._opened_at is not None:
            logger.info("breaker_closed", dependency=self.name)
        self._consecutive = 0
        self._opened_at = None
        self._tripped = False
        self._gauge.set(_GAUGE_VALUE["closed"])

    def record_failure(self, *, probe: bool = False) -> None:
        """The dependency failed or timed out."""
        if probe:
            self._probing = False
        self._consecutive += 1
        if self._tripped:
            return  # the watch holds it open until its ping answers
        if probe or self._opened_at is not None or self._consecutive >= self.failure_threshold:
            if self._opened_at is None or probe:
                logger.warning("breaker_opened", dependency=self.name, failures=self._consecutive)
            self._open()

    def release_probe(self) -> None:
        """The probe ended without a verdict (cancelled): let the next call probe."""
        self._probing = False

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[bool]:
        """Run the block as one call: refused while open, its outcome recorded; yields
        True when the call is the half-open probe."""
        probe = self.before_call()
        try:
            yield probe
        except asyncio.CancelledError:
            if probe:
                self.release_probe()
            raise
        except BreakerOpen:
            # Released because the breaker opened (or another breaker refused): no verdict.
            if probe:
                self.release_probe()
            raise
        except Exception as exc:
            if isinstance(exc, TimeoutError) or self.is_failure(exc):
                self.record_failure(probe=probe)
            else:
                # Any other exception is an answer from a reachable dependency.
                self.record_success(probe=probe)
            raise
        self.record_success(probe=probe)

    async def call(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        timeout_s: float | None,
        probe_timeout_s: float | None = None,
    ) -> T:
        """``await operation()`` through the breaker, a timeout counting as a failure.

        ``probe_timeout_s`` bounds the half-open probe: the one request that finds out
        whether the dependency is back should not wait out a full timeout if it is not.

        A call still running when the breaker opens (others' failures, or the watch's
        :meth:`trip`) is released at once with :class:`BreakerOpen`: the operation is
        cancelled and its outcome not counted.
        """
        async with self.guard() as probe:
            limit = probe_timeout_s if probe and probe_timeout_s is not None else timeout_s
            if probe:
                # The breaker is open already: nothing to race against.
                return await _bounded(operation, limit)
            return await self._released_on_open(operation, limit)

    async def _released_on_open(
        self, operation: Callable[[], Awaitable[T]], limit: float | None
    ) -> T:
        # The calling task itself is cancelled when the breaker opens (as asyncio.timeout
        # does on expiry): no task per call, the call runs inline as before.
        task = asyncio.current_task()
        if task is None:
            return await _bounded(operation, limit)
        self._in_flight[task] = False
        try:
            return await _bounded(operation, limit)
        except asyncio.CancelledError:
            if self._in_flight.get(task):
                self._in_flight[task] = False  # handled here: finally must not uncancel
                if task.uncancel() == 0:
                    # Only the opening cancelled it: the caller learns the breaker is open.
                    raise BreakerOpen(
                        self.name, self.retry_after_s() or self.reset_timeout_s
                    ) from None
            raise
        finally:
            if self._in_flight.pop(task, False):
                # The opening's cancellation never reached the call (it ended first).
                task.uncancel()

    def _release_in_flight(self) -> None:
        for task, released in self._in_flight.items():
            if not released and not task.done():
                self._in_flight[task] = True
                task.cancel()


async def _bounded(operation: Callable[[], Awaitable[T]], limit: float | None) -> T:
    if limit is None:
        return await operation()
    async with asyncio.timeout(limit):
        return await operation()
