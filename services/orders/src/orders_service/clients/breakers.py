"""Circuit breakers for payment and shipping: an asyncio adapter over pybreaker.

pybreaker keeps the state machine and, through ``CircuitRedisStorage``, shares the
state across replicas. It is not asyncio-safe as it stands (``call_async`` needs
tornado, ``call()`` never sees a coroutine's failure, ``calling()`` holds a thread lock
across the block), so :class:`AsyncCircuitBreaker` drives its state objects itself:

* closed: the call runs; a *system* failure (not excluded) counts, and at ``fail_max``
  pybreaker opens the circuit;
* open: calls fail at once with :class:`CircuitOpenError` until ``reset_timeout`` has
  passed (pybreaker's Redis storage keeps ``opened_at`` in whole seconds, so keep
  ``reset_timeout`` well above one second);
* half-open: exactly one trial call runs, on any replica (a Redis ``SET NX`` token);
  the others fail fast. Success closes the circuit, failure opens it again.

pybreaker's storage uses a blocking Redis client, so every step that touches it runs
in a worker thread; the event loop never blocks on it. The common case skips pybreaker
altogether: one asyncio ``MGET`` of the state and failure count pybreaker keeps in
Redis shows a closed circuit with no failures counted, and a call that then succeeds
has nothing to record (pybreaker would only reset the count to zero). Everything else
(an open or half-open circuit, a count to reset, any failure, this process's view of
the state being out of date) goes through pybreaker's own state machine as before.
Two thread hops and three blocking Redis commands per call were most of a saga step's
own cost.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pybreaker
from prometheus_client import Counter, Gauge
from redis import Redis as SyncRedis
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from storefront_kit.logging import get_logger

__all__ = ["AsyncCircuitBreaker", "CircuitOpenError", "build_breaker"]

T = TypeVar("T")
logger = get_logger(__name__)

STATE_VALUES = {pybreaker.STATE_CLOSED: 0, pybreaker.STATE_HALF_OPEN: 1, pybreaker.STATE_OPEN: 2}
BREAKER_STATE = Gauge(
    "circuit_breaker_state", "Breaker state: 0 closed, 1 half-open, 2 open.", ["breaker"]
)
BREAKER_REJECTIONS = Counter(
    "circuit_breaker_rejected_total", "Calls failed fast by an open breaker.", ["breaker"]
)
BREAKER_FAILURES = Counter(
    "circuit_breaker_failures_total", "System failures counted by a breaker.", ["breaker"]
)


class CircuitOpenError(Exception):
    """The breaker is open (or its half-open trial is taken): the call was not made."""

    def __init__(self, name: str) -> None:
        super().__init__(f"circuit '{name}' is open")
        self.name = name


class _MetricsListener(pybreaker.CircuitBreakerListener):
    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        BREAKER_STATE.labels(cb.name).set(STATE_VALUES.get(new_state.name, 0))


OnOpen = Callable[[str], Awaitable[None]]


class _TolerantRedisStorage(pybreaker.CircuitRedisStorage):
    """pybreaker's Redis storage that lets a service start while Redis is down.

    pybreaker writes the initial state when the storage is built and again whenever it
    finds the state missing, so skipping the first write loses nothing.
    """

    def _initialize_redis_state(self, state: str) -> None:
        try:
            super()._initialize_redis_state(state)
        except RedisError as exc:
            logger.warning("breaker_state_init_deferred", error=repr(exc))


class AsyncCircuitBreaker:
    """Runs coroutines under a pybreaker state machine shared through Redis."""

    def __init__(
        self,
        breaker: pybreaker.CircuitBreaker,
        *,
        redis: Redis,
        on_open: OnOpen | None = None,
    ) -> None:
        assert breaker.name, "a shared breaker needs a name"
        self._breaker = breaker
        self._redis = redis
        self._on_open = on_open
        self._trial_key = f"breaker:{breaker.name}:trial"
        storage = breaker._state_storage
        self._shared_keys: list[str] | None = (
            [storage._namespace("state"), storage._namespace("fail_counter")]
            if isinstance(storage, pybreaker.CircuitRedisStorage)
            else None
        )
        self.name: str = breaker.name
        BREAKER_STATE.labels(self.name).set(0)

    async def state(self) -> str:
        """The shared state: ``closed``, ``open`` or ``half-open``."""
        return await asyncio.to_thread(lambda: self._breaker.state.name)

    async def _opened_recently(self) -> bool:
        def check() -> bool:
            opened_at = self._breaker._state_storage.opened_at
            timeout = timedelta(seconds=self._breaker.reset_timeout)
            return bool(opened_at and datetime.now(UTC) < opened_at + timeout)

        return await asyncio.to_thread(check)

    async def _take_trial(self) -> bool:
        # One trial across every replica; the token expires in case its holder dies.
        ttl_ms = max(1000, int(self._breaker.reset_timeout * 1000))
        return bool(await self._redis.set(self._trial_key, "1", nx=True, px=ttl_ms))

    async def _release_trial(self) -> None:
        await self._redis.delete(self._trial_key)

    async def _closed_and_clean(self) -> bool:
        """Whether the shared state is ``closed`` with no failure counted, as this
        process last saw it too (one asyncio round trip, no thread)."""
        if self._shared_keys is None or self._breaker._state.name != pybreaker.STATE_CLOSED:
            return False
        try:
            state, failures = await self._redis.mget(self._shared_keys)
        except RedisError:
            return False  # pybreaker's storage decides what Redis trouble means
        # Either client flavour: bytes, or str with ``decode_responses``.
        return state in (b"closed", "closed") and failures in (b"0", "0", None)

    async def call(self, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``func(*args, **kwargs)`` if the breaker lets it through."""
        if await self._closed_and_clean():
            try:
                return await func(*args, **kwargs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._failed(exc, trial=False)
                raise
        state = await self.state()
        trial = False
        if state == pybreaker.STATE_OPEN:
            if await self._opened_recently() or not await self._take_trial():
                BREAKER_REJECTIONS.labels(self.name).inc()
                raise CircuitOpenError(self.name)
            await asyncio.to_thread(self._breaker.half_open)
            trial = True
        elif state == pybreaker.STATE_HALF_OPEN:
            if not await self._take_trial():
                BREAKER_REJECTIONS.labels(self.name).inc()
                raise CircuitOpenError(self.name)
            trial = True
        try:
            result = await func(*args, **kwargs)
        except asyncio.CancelledError:
            if trial:
                await self._release_trial()
            raise
        except Exception as exc:
            await self._failed(exc, trial=trial)
            raise
        await asyncio.to_thread(self._record_success)
        if trial:
            await self._release_trial()
        return result

    async def _failed(self, exc: Exception, *, trial: bool) -> None:
        opened = await asyncio.to_thread(self._record_failure, exc)
        if trial:
            await self._release_trial()
        if opened:
            logger.warning("circuit_opened", breaker=self.name, error=repr(exc))
            if self._on_open is not None:
                await self._on_open(self.name)

    def _record_failure(self, exc: Exception) -> bool:
        """Feed a failure to pybreaker; True when this call opened the circuit."""
        breaker = self._breaker
        with breaker._lock:
            before = breaker.state.name
            if breaker.is_system_error(exc):
                BREAKER_FAILURES.labels(self.name).inc()
            # pybreaker signals the trip by raising; the caller re-raises the original.
            with contextlib.suppress(Exception):
                breaker.state._handle_error(exc, reraise=False)
            return before != pybreaker.STATE_OPEN and breaker.current_state == pybreaker.STATE_OPEN

    def _record_success(self) -> None:
        breaker = self._breaker
        with breaker._lock:
            breaker.state._handle_success()


def build_breaker(
    name: str,
    *,
    sync_redis: SyncRedis,
    redis: Redis,
    fail_max: int,
    reset_timeout_s: float,
    is_business_error: Callable[[BaseException], bool],
    namespace: str = "storefront",
    on_open: OnOpen | None = None,
) -> AsyncCircuitBreaker:
    """A breaker whose state lives in Redis; business errors (4xx) never count as failures.

    On a Redis Cluster the namespace is a hash tag (``{storefront:payment}:pybreaker:state``)
    so the state and counters share a slot (one ``MGET`` reads them) and pybreaker runs in
    its cluster mode; on one server the key names stay ``storefront:payment:pybreaker:*``.
    """
    cluster = isinstance(redis, RedisCluster)
    storage = _TolerantRedisStorage(
        pybreaker.STATE_CLOSED,
        sync_redis,
        namespace=f"{{{namespace}:{name}}}" if cluster else f"{namespace}:{name}",
        cluster_mode=cluster,
    )
    breaker = pybreaker.CircuitBreaker(
        fail_max=fail_max,
        reset_timeout=reset_timeout_s,
        exclude=[is_business_error],
        listeners=[_MetricsListener()],
        state_storage=storage,
        name=name,
        throw_new_error_on_trip=False,
    )
    return AsyncCircuitBreaker(breaker, redis=redis, on_open=on_open)
