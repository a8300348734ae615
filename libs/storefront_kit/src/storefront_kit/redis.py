"""Redis clients with timeouts short enough to answer 503 quickly when Redis is down."""

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from storefront_kit.settings import ServiceSettings

__all__ = ["create_redis", "reconnect_retry", "redis_from_settings"]


def reconnect_retry() -> Retry:
    """One more attempt, on a fresh connection, after a connection error.

    A Redis restart leaves every pooled connection dead; without this the first command
    on each of them fails (a 503 for the request behind it) although the server is back.
    Only ``ConnectionError`` is retried: it is raised when the connection was found
    closed, before the server could have run the command. A timeout is not retried: the
    server may have run a non-idempotent command (``INCR``, ``XADD``) that then ran twice.
    """
    return Retry(
        ExponentialWithJitterBackoff(base=0.05, cap=0.5),
        retries=1,
        supported_errors=(RedisConnectionError,),
    )


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
    ``None`` is for connections that block on purpose (pub/sub listeners). A connection
    broken by a Redis restart is replaced and the command tried once more
    (:func:`reconnect_retry`).
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        decode_responses=decode_responses,
        health_check_interval=30,
        retry=reconnect_retry(),
        retry_on_error=[RedisConnectionError],
    )
    return Redis.from_pool(pool)


def redis_from_settings(settings: ServiceSettings, *, blocking_reads: bool = False) -> "Redis":
    """The service's Redis client as its settings describe it (``<SERVICE>_REDIS_*``).

    ``blocking_reads`` drops the socket timeout, for a client that waits on purpose
    (pub/sub listeners).
    """
    return create_redis(
        settings.redis_url,
        socket_timeout=None if blocking_reads else settings.redis_socket_timeout_s,
    )
