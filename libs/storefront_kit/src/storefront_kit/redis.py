"""Redis clients with timeouts short enough to answer 503 quickly when Redis is down."""

from redis.asyncio import BlockingConnectionPool, Redis

__all__ = ["create_redis"]


def create_redis(
    url: str,
    *,
    socket_timeout: float | None = 2.0,
    connect_timeout: float = 1.0,
    max_connections: int = 100,
    pool_timeout: float = 2.0,
    decode_responses: bool = True,
) -> "Redis":
    """A pooled asyncio Redis client that owns its pool.

    The pool blocks: a burst of more concurrent commands than ``max_connections`` waits
    up to ``pool_timeout`` for a free connection instead of failing at once (the plain
    pool raises ``MaxConnectionsError`` the moment it is exhausted). ``socket_timeout``
    ``None`` is for connections that block on purpose (pub/sub listeners).
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        decode_responses=decode_responses,
        health_check_interval=30,
    )
    return Redis.from_pool(pool)
