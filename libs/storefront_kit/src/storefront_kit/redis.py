"""Redis clients with timeouts short enough to answer 503 quickly when Redis is down."""

from redis.asyncio import Redis

__all__ = ["create_redis"]


def create_redis(
    url: str,
    *,
    socket_timeout: float = 2.0,
    connect_timeout: float = 1.0,
    max_connections: int = 100,
    decode_responses: bool = True,
) -> "Redis":
    """A pooled asyncio Redis client."""
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        max_connections=max_connections,
        decode_responses=decode_responses,
        health_check_interval=30,
    )
