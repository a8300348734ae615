"""A Redis Cluster behind the same settings and clients as one server (docs/redis.md).

The session's three-master cluster (the harness's ``redis_cluster_url``) for what only
reads and writes; a cluster of the test's own for freezing one of its masters.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict
from redis import Redis as SyncRedis
from redis.asyncio import Redis, RedisCluster

from storefront_kit.breaker import Breaker
from storefront_kit.health import redis_check
from storefront_kit.rate_limits import RateLimited, RateLimiter
from storefront_kit.redis import (
    cluster_nodes,
    create_redis,
    create_sync_redis,
    is_cluster_url,
    ping,
)
from storefront_kit.settings import ServiceSettings
from storefront_kit.watch import DependencyWatch, redis_ping
from storefront_stack import infra
from storefront_stack.processes import frozen


class ServiceLike(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SERVICE_LIKE_", env_file=None, extra="ignore")
    service_name: ClassVar[str] = "inventory"


def test_a_cluster_url_names_its_startup_nodes() -> None:
    url = "redis+cluster://10.0.0.1:7000,10.0.0.2:7001,redis-c:7002/"
    assert is_cluster_url(url)
    assert not is_cluster_url("redis://127.0.0.1:6379/0")
    assert cluster_nodes(url) == [("10.0.0.1", 7000), ("10.0.0.2", 7001), ("redis-c", 7002)]
    assert cluster_nodes("rediss+cluster://:secret@node-a/") == [("node-a", 6379)]
    with pytest.raises(ValueError, match="host:port"):
        cluster_nodes("redis+cluster://node-a:port/")
    with pytest.raises(ValueError, match="at least one"):
        cluster_nodes("redis+cluster:///")


def test_settings_take_a_cluster_url_and_refuse_one_without_nodes() -> None:
    settings = ServiceLike(redis_url="redis+cluster://127.0.0.1:7000,127.0.0.1:7001/")
    assert is_cluster_url(settings.redis_url)
    with pytest.raises(ValidationError, match="at least one"):
        ServiceLike(redis_url="redis+cluster:///")
    with pytest.raises(ValidationError, match="redis\\+cluster"):
        ServiceLike(redis_url="http://127.0.0.1:7000/")


@pytest.mark.redis_modes("cluster")
async def test_a_cluster_url_gives_a_cluster_client_whose_keys_spread_over_every_master(
    redis_url: str,
) -> None:
    redis = create_redis(redis_url)
    sync = create_sync_redis(redis_url)
    try:
        assert isinstance(redis, RedisCluster)
        for n in range(60):
            await redis.set(f"spread:{n}", n)
        assert sync.get("spread:7") == b"7"
        per_node = []
        for host, port in cluster_nodes(redis_url):
            node = SyncRedis(host=host, port=port)
            try:
                per_node.append(node.dbsize())
            finally:
                node.close()
        assert len(per_node) == 3
        assert all(count > 0 for count in per_node)
        assert sum(per_node) == 60
        assert await ping(redis) is True
    finally:
        await redis.aclose()
        sync.close()


@pytest.mark.redis_modes
async def test_rate_limits_count_alike_for_every_replica_on_either_deployment(
    redis_url: str,
) -> None:
    limiters = [
        RateLimiter(redis_url, {"send": "3/minute"}, key_prefix="test:rl", socket_timeout=2.0)
        for _ in range(2)
    ]
    try:
        # Several keys, so on a cluster the counters sit on different masters.
        for key in ("a", "b", "c", "d"):
            await limiters[0].hit("send", key)
            await limiters[1].hit("send", key)
            await limiters[0].hit("send", key)
            with pytest.raises(RateLimited):
                await limiters[1].hit("send", key)
    finally:
        for limiter in limiters:
            await limiter.aclose()


# --- a cluster of the test's own, one master frozen ---------------------------------


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[infra.Cluster]:
    cluster = infra.start_redis_cluster(
        tmp_path / "cluster", infra.free_cluster_ports(3), log_dir=tmp_path
    )
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def cluster_client(own_cluster: infra.Cluster) -> AsyncIterator[Redis]:
    client = create_redis(own_cluster.url, socket_timeout=0.5)
    await client.ping()
    yield client
    await client.aclose()


def _pid(cluster: infra.Cluster, index: int) -> int:
    process = cluster.nodes[index].process.process
    assert process is not None
    return process.pid


async def test_one_frozen_master_fails_the_readiness_ping_and_trips_the_watch(
    own_cluster: infra.Cluster, cluster_client: Redis
) -> None:
    breaker = Breaker("redis", failure_threshold=5, reset_timeout_s=60.0)
    watch = DependencyWatch(
        breaker, redis_ping(cluster_client), interval_s=0.05, timeout_s=0.2, misses=2
    )
    check = redis_check(cluster_client)
    assert await check.probe() is True
    watch.start()
    try:
        stopped = _pid(own_cluster, 2)
        with frozen(stopped):
            async with asyncio.timeout(10):
                while breaker.state != "open":
                    await asyncio.sleep(0.05)
            with pytest.raises(Exception):  # noqa: B017, PT011 (a timeout, whatever its class)
                async with asyncio.timeout(1.0):
                    await check.probe()
        async with asyncio.timeout(10):
            while breaker.state != "closed":
                await asyncio.sleep(0.05)
    finally:
        await watch.stop()
