"""Redis clients with timeouts short enough to answer 503 quickly when Redis is down.

One URL chooses the deployment: ``redis://host:port/db`` (or ``rediss://``, ``unix://``)
is a single server, ``redis+cluster://host:port[,host:port...]/`` (or
``rediss+cluster://``) a Redis Cluster whose startup nodes are the listed addresses (one
is enough; the client learns the rest from ``CLUSTER SLOTS``). The same commands work on
both: every Lua script and transaction keeps its keys in one hash slot (docs/redis.md).
"""

from typing import Any, cast
from urllib.parse import urlsplit

import redis as sync_redis
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ClusterDownError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError

from storefront_kit.redis_urls import (
    CLUSTER_SCHEMES,
    cluster_credentials,
    cluster_nodes,
    is_cluster_url,
)
from storefront_kit.settings import ServiceSettings

__all__ = [
    "CLUSTER_SCHEMES",
    "cluster_nodes",
    "create_redis",
    "create_sync_redis",
    "is_cluster_url",
    "ping",
    "reconnect_retry",
    "redis_from_settings",
]


async def ping(redis: Any) -> bool:
    """``PING``: the server, or every master of a cluster (true only when all answer).

    A cluster with one master down still answers for the other masters' slots, but the
    requests whose keys hash to the dead one's fail; the service's Redis is not "up"
    until every master answers, so the watch and readiness ping them all.
    """
    if isinstance(redis, RedisCluster):
        answers: Any = await redis.ping(target_nodes=RedisCluster.PRIMARIES)
        return bool(answers)
    return bool(await redis.ping())


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


class _Cluster(RedisCluster):
    """redis-py's cluster client, minus the retry of a timed-out command.

    The stock client retries a command after a ``TimeoutError`` as well; like
    :func:`reconnect_retry` this one does not (the node may have run it). A connection
    error, a cluster that is down for a moment (failover) and a slot not yet covered are
    retried once, after the client re-reads the topology. ``MOVED``/``ASK`` redirections
    are followed as usual.
    """

    ERRORS_ALLOW_RETRY = (  # type: ignore[assignment]
        RedisConnectionError,
        ClusterDownError,
        SlotNotCoveredError,
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
    """A pooled asyncio Redis client that owns its pool (or a cluster client for a cluster URL).

    The pool blocks: a burst of more concurrent commands than ``max_connections`` waits
    up to ``pool_timeout`` for a free connection instead of failing at once (the plain
    pool raises ``MaxConnectionsError`` the moment it is exhausted). ``socket_timeout``
    ``None`` is for connections that block on purpose (pub/sub listeners). A connection
    broken by a Redis restart is replaced and the command tried once more
    (:func:`reconnect_retry`).

    For a ``redis+cluster://`` URL the result is a :class:`redis.asyncio.RedisCluster`
    with the same timeouts and retry (typed as ``Redis``: the commands the platform uses
    have the same signatures on both). Its pools are per node and do not block:
    ``max_connections`` applies to each node, and a burst beyond it fails at once with
    ``MaxConnectionsError`` (a ``ConnectionError``, so a 503) rather than waiting
    ``pool_timeout``.
    """
    if is_cluster_url(url):
        return cast(
            "Redis",
            _create_cluster(
                url, socket_timeout, connect_timeout, max_connections, decode_responses
            ),
        )
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout,
        retry_on_error=[RedisConnectionError],
        **_connection_options(socket_timeout, connect_timeout, decode_responses),
    )
    return Redis.from_pool(pool)


def _connection_options(
    socket_timeout: float | None, connect_timeout: float, decode_responses: bool
) -> dict[str, Any]:
    """What every connection gets, to one server or to a cluster's nodes."""
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "decode_responses": decode_responses,
        "health_check_interval": 30,
        "retry": reconnect_retry(),
    }


def _create_cluster(
    url: str,
    socket_timeout: float | None,
    connect_timeout: float,
    max_connections: int,
    decode_responses: bool,
) -> RedisCluster:
    scheme = urlsplit(url).scheme.lower()
    options: dict[str, Any] = {"ssl": True} if scheme == "rediss+cluster" else {}
    return _Cluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster_nodes(url)],
        max_connections=max_connections,
        **_connection_options(socket_timeout, connect_timeout, decode_responses),
        **cluster_credentials(url),
        **options,
    )


def create_sync_redis(
    url: str, *, socket_timeout: float | None = 2.0, connect_timeout: float = 1.0
) -> "sync_redis.Redis":
    """A synchronous client (for libraries that call Redis from threads, e.g. pybreaker).

    ``redis.RedisCluster`` for a cluster URL (typed as ``redis.Redis``, like
    :func:`create_redis`), one attempt more after a connection error.
    """
    if not is_cluster_url(url):
        return sync_redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=connect_timeout
        )
    from redis.cluster import ClusterNode as SyncClusterNode
    from redis.retry import Retry as SyncRetry

    scheme = urlsplit(url).scheme.lower()
    options: dict[str, Any] = {"ssl": True} if scheme == "rediss+cluster" else {}
    cluster = sync_redis.RedisCluster(
        startup_nodes=[
            SyncClusterNode(host, port)  # type: ignore[no-untyped-call]
            for host, port in cluster_nodes(url)
        ],
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=SyncRetry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=1),
        **cluster_credentials(url),
        **options,
    )
    return cast("sync_redis.Redis", cluster)


def redis_from_settings(settings: ServiceSettings, *, blocking_reads: bool = False) -> "Redis":
    """The service's Redis client as its settings describe it (``<SERVICE>_REDIS_*``).

    ``blocking_reads`` drops the socket timeout, for a client that waits on purpose
    (pub/sub listeners).
    """
    return create_redis(
        settings.redis_url,
        socket_timeout=None if blocking_reads else settings.redis_socket_timeout_s,
    )
