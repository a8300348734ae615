"""Rate limits shared by every replica: the ``limits`` library's moving window in Redis."""

import math
import time

import limits
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError

from storefront_kit.redis import reconnect_retry

__all__ = ["RateLimitExceeded", "RateLimiter"]


class RateLimitExceeded(Exception):
    """A limit is used up; ``retry_after`` seconds until the window lets one more through."""

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(scope)
        self.scope = scope
        self.retry_after = retry_after


class RateLimiter:
    """Named moving-window limits (``"phone"``, ``"ip"``...) over one Redis connection pool."""

    def __init__(self, redis_url: str, rates: dict[str, str], *, socket_timeout: float) -> None:
        self._pool = BlockingConnectionPool.from_url(
            redis_url,
            max_connections=50,
            timeout=socket_timeout,
            socket_timeout=socket_timeout,
            # A connection broken by a Redis restart is replaced and the command tried again.
            retry=reconnect_retry(),
            retry_on_error=[RedisConnectionError],
        )
        storage = RedisStorage(
            "async+" + redis_url,
            implementation="redispy",
            key_prefix="auth:rl",
            # limits types its options as scalars; redis-py takes its pool here.
            connection_pool=self._pool,  # type: ignore[arg-type]
        )
        self._limiter = MovingWindowRateLimiter(storage)
        self._items = {scope: limits.parse(rate) for scope, rate in rates.items()}

    async def hit(self, scope: str, key: str) -> None:
        """Count one event for ``key`` under ``scope``'s limit; raise when it is used up."""
        item = self._items[scope]
        if await self._limiter.hit(item, scope, key):
            return
        stats = await self._limiter.get_window_stats(item, scope, key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimitExceeded(scope, retry_after)

    async def aclose(self) -> None:
        """Close the pool's connections."""
        await self._pool.aclose()
