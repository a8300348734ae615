"""Rate limits every replica shares: the ``limits`` library's counters in Redis.

A :class:`RateLimiter` holds named limits (``{"ip": "30/10minutes", "phone": "5/10minutes"}``)
in limits' syntax and counts events per key (a client address, a phone) in Redis, so the
budget is one for all replicas of a service, whichever gateway or replica a request
reaches. Each limit's key holds one counter (fixed window) or one list (moving window):
no script touches two keys, so a Redis Cluster needs no hash tags.

A used-up limit raises :class:`RateLimited` (429 ``rate_limited`` with ``Retry-After``
and the problem's ``scope``: ``ip``, ``phone``...). When Redis cannot be reached, the
limiter either lets the request through (``fail_open=True``: the gateway's per-address
zones still apply, and what a route itself keeps in Redis fails on its own) or raises
:class:`RateLimitUnavailable` (503 ``rate_limit_unavailable`` with ``Retry-After``). A
storage error is never a 500. Both are :mod:`storefront_kit.errors`, rendered by the
problem handler::

    TooManyRequests 429
    └── RateLimited              (rate_limited)            ``scope``, ``retry_after``
    ServiceUnavailable 503
    └── RateLimitUnavailable     (rate_limit_unavailable)  Redis down, failing closed
"""

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

import limits
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
)
from limits.aio.strategies import (
    RateLimiter as _Strategy,
)
from limits.errors import StorageError
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from storefront_kit.breaker import Breaker, BreakerOpen
from storefront_kit.errors import ServiceUnavailable, TooManyRequests
from storefront_kit.logging import get_logger
from storefront_kit.redis import is_cluster_url, reconnect_retry

__all__ = [
    "RateLimitUnavailable",
    "RateLimited",
    "RateLimiter",
    "Strategy",
    "check_rate",
]

logger = get_logger(__name__)

T = TypeVar("T")
Strategy = Literal["moving-window", "fixed-window"]
_UNREACHABLE = (StorageError, RedisError, OSError, TimeoutError, BreakerOpen)


def check_rate(value: str) -> str:
    """``value`` if it is a rate in limits' syntax (``"5/10minutes"``), else ``ValueError``."""
    try:
        limits.parse(value)
    except ValueError as exc:
        raise ValueError(f"not a rate limit in limits' syntax: {value!r}") from exc
    return value


class RateLimited(TooManyRequests):
    """A limit is used up; ``retry_after`` seconds until it lets one more through."""

    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, *, scope: str, retry_after: int) -> None:
        super().__init__(
            f"Too many requests for this {scope}; retry later.",
            retry_after=retry_after,
            scope=scope,
        )
        self.scope = scope


class RateLimitUnavailable(ServiceUnavailable):
    """Redis could not be asked, and the limiter fails closed."""

    code = "rate_limit_unavailable"
    title = "Rate limits unavailable"

    def __init__(self) -> None:
        super().__init__(
            "The rate limits cannot be checked right now; retry shortly.",
            headers={"Retry-After": "1"},
        )


class RateLimiter:
    """Named limits over one Redis connection pool of its own."""

    def __init__(
        self,
        redis_url: str,
        rates: Mapping[str, str],
        *,
        key_prefix: str,
        socket_timeout: float,
        strategy: Strategy = "moving-window",
        fail_open: bool = True,
        max_connections: int = 50,
        breaker: Breaker | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self._pool: BlockingConnectionPool | None = None
        self._cluster: RedisClusterStorage | None = None
        storage: RedisStorage
        if is_cluster_url(redis_url):
            # limits builds redis-py's cluster client from the startup nodes in the URL
            # (``async+redis+cluster://h:p,h:p``); its scripts touch one key each, so
            # every counter lives in the slot of its own key.
            scheme, rest = redis_url.split("://", 1)
            storage = self._cluster = RedisClusterStorage(
                "async+redis+cluster://" + rest,
                ssl=scheme.lower() == "rediss+cluster",
                implementation="redispy",
                key_prefix=key_prefix,
                wrap_exceptions=True,
                max_connections=max_connections,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                # A connection broken by a restart or failover: one more attempt.
                retry=reconnect_retry(),  # type: ignore[arg-type]
            )
        else:
            self._pool = BlockingConnectionPool.from_url(
                redis_url,
                max_connections=max_connections,
                timeout=socket_timeout,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                # A connection broken by a Redis restart is replaced and the command tried again.
                retry=reconnect_retry(),
                retry_on_error=[RedisConnectionError],
            )
            storage = RedisStorage(
                "async+" + redis_url,
                implementation="redispy",
                key_prefix=key_prefix,
                wrap_exceptions=True,
                # limits types its options as scalars; redis-py takes its pool here.
                connection_pool=self._pool,  # type: ignore[arg-type]
            )
        self._limiter: _Strategy = (
            MovingWindowRateLimiter(storage)
            if strategy == "moving-window"
            else FixedWindowRateLimiter(storage)
        )
        self._items = {scope: limits.parse(check_rate(rate)) for scope, rate in rates.items()}
        self._fail_open = fail_open
        # With the service's Redis breaker, a Redis known to be down costs a check no
        # wait at all, and one that hangs costs ``timeout_s``, not the socket timeout.
        self._breaker = breaker
        self._timeout_s = timeout_s

    async def hit(self, limit: str, key: str, *, scope: str | None = None) -> None:
        """Count one event for ``key`` under the named limit; :class:`RateLimited` when used up.

        ``scope`` is what the problem names as used up (``"ip"``); the limit's name by default.
        """
        item = self._items[limit]
        try:
            if await self._ask(lambda: self._limiter.hit(item, limit, key)):
                return
            stats = await self._ask(lambda: self._limiter.get_window_stats(item, limit, key))
        except _UNREACHABLE as exc:
            logger.warning(
                "rate_limit_storage_unavailable",
                limit=limit,
                error=type(exc).__name__,
                fail_open=self._fail_open,
            )
            if self._fail_open:
                return
            raise RateLimitUnavailable from None
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(scope=scope or limit, retry_after=retry_after)

    async def clear(self, limit: str, key: str) -> None:
        """Forget what was counted for ``key`` under the named limit (an erased user's)."""
        item = self._items[limit]
        await self._ask(lambda: self._limiter.clear(item, limit, key))

    async def _ask(self, operation: Callable[[], Awaitable[T]]) -> T:
        """One storage round trip, through the breaker and within the deadline if given."""
        if self._breaker is not None:
            return await self._breaker.call(operation, timeout_s=self._timeout_s)
        if self._timeout_s is None:
            return await operation()
        async with asyncio.timeout(self._timeout_s):
            return await operation()

    async def aclose(self) -> None:
        """Close the pool's connections."""
        if self._pool is not None:
            await self._pool.aclose()
        if self._cluster is not None:
            bridge: Any = self._cluster.bridge
            client: Any = bridge.storage  # the RedisCluster limits built
            await client.aclose()
