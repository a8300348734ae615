"""A per-process circuit breaker for "is this dependency reachable now?".

One :class:`Breaker` per dependency (Redis, Elasticsearch) per process. It opens after
``failure_threshold`` consecutive failures (timeouts count), refuses every call at once
while open (:class:`BreakerOpen`, carrying the seconds until the next probe), and after
``reset_timeout_s`` lets exactly one call through as a probe (half-open): its success
closes the breaker, its failure opens it again for another ``reset_timeout_s``.

Process-local on purpose: whether Redis answers is a question each process can answer
for itself in a few milliseconds, and the shared store for breaker state would be the
very Redis it is about. Only failures that mean "unreachable or too slow" are counted
(timeouts, and what the caller's ``is_failure`` says); a refused command or a 4xx is an
answer from a reachable dependency.

Exception tree::

    Exception
    └── BreakerOpen     the dependency is known to be down; retry after ``retry_after_s``
"""

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal, TypeVar

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
    """The dependency is known to be down: the call was not made."""

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
        self._gauge = BREAKER_STATE.labels(dependency=name)
        self._gauge.set(0)

    @property
    def state(self) -> BreakerState:
        """``closed``, ``open`` (refusing) or ``half_open`` (a probe may go, or is going)."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.reset_timeout_s:
            return "open"
        return "half_open"

    @property
    def is_open(self) -> bool:
        """True while calls would be refused without being tried."""
        state = self.state
        return state == "open" or (state == "half_open" and self._probing)

    def retry_after_s(self) -> float:
        """Seconds until the next probe may go (0 when calls are allowed)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.reset_timeout_s - self._clock())

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
        self._gauge.set(_GAUGE_VALUE["closed"])

    def record_failure(self, *, probe: bool = False) -> None:
        """The dependency failed or timed out."""
        if probe:
            self._probing = False
        self._consecutive += 1
        if probe or self._opened_at is not None or self._consecutive >= self.failure_threshold:
            if self._opened_at is None or probe:
                logger.warning("breaker_opened", dependency=self.name, failures=self._consecutive)
            self._opened_at = self._clock()
            self._gauge.set(_GAUGE_VALUE["open"])

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
        """
        async with self.guard() as probe:
            limit = probe_timeout_s if probe and probe_timeout_s is not None else timeout_s
            if limit is None:
                return await operation()
            async with asyncio.timeout(limit):
                return await operation()
