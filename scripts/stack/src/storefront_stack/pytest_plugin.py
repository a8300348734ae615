"""Pytest fixtures: the same real servers ``make run`` uses, started once per session.

Servers start lazily: a unit test that asks for none of these fixtures needs none of
them. ``DATABASE_URL``, ``REDIS_URL``, ``REDIS_CLUSTER_URL`` and ``ELASTICSEARCH_URL``
point the suite at external servers instead.

Redis comes in two deployments, one server and a three-master Redis Cluster. A test (or
module, through ``pytestmark``) marked ``@pytest.mark.redis_modes`` that uses the
``redis_url`` fixture runs once on each (test ids ``[single]`` and ``[cluster]``);
``@pytest.mark.redis_modes("cluster")`` runs it on the cluster only. Unmarked tests get
the single server.
"""

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storefront_stack import infra
from storefront_stack.platform import REPO_ROOT, Platform, PlatformOptions, running_platform
from storefront_stack.processes import PidRegistry, free_port

__all__ = ["REDIS_MODES", "create_test_database", "database_fixture", "flush_redis"]

REDIS_MODES = ("single", "cluster")
"""The Redis deployments a ``redis_modes`` test runs on."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "redis_modes(*modes): run the test once per Redis deployment ('single', 'cluster';"
        " both when none is named) through the redis_url fixture",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("redis_modes")
    if marker is None or "redis_url" not in metafunc.fixturenames:
        return
    modes = marker.args or REDIS_MODES
    unknown = set(modes) - set(REDIS_MODES)
    if unknown:
        raise pytest.UsageError(f"redis_modes: unknown mode(s) {sorted(unknown)}")
    metafunc.parametrize("redis_mode", modes, indirect=True)


def _external_or_started(
    variable: str, start: Callable[[], infra.Server | infra.Cluster]
) -> Iterator[str]:
    """The URL the environment ``variable`` names, else that of a server ``start`` starts
    (and this stops when the session ends)."""
    external = os.environ.get(variable)
    if external:
        yield external
        return
    server = start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch directory for this session's servers (data and logs)."""
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def stack_registry(stack_dir: Path) -> PidRegistry:
    """Process groups started by this session, killed if the session dies."""
    return PidRegistry(stack_dir / "pids.json")


@pytest.fixture(scope="session")
def postgres_server_url(stack_dir: Path, stack_registry: PidRegistry) -> Iterator[str]:
    """A PostgreSQL server URL (no database part)."""
    yield from _external_or_started(
        "DATABASE_URL",
        lambda: infra.start_postgres(
            stack_dir / "postgres" / "data",
            free_port(),
            registry=stack_registry,
            log_file=stack_dir / "postgres.log",
            fast_unsafe=True,
        ),
    )


@pytest.fixture(scope="session")
def redis_server_url(stack_dir: Path, stack_registry: PidRegistry) -> Iterator[str]:
    """A Redis server URL (database 0)."""
    yield from _external_or_started(
        "REDIS_URL",
        lambda: infra.start_redis(
            stack_dir / "redis",
            free_port(),
            registry=stack_registry,
            log_file=stack_dir / "redis.log",
            persistent=False,
        ),
    )


@pytest.fixture(scope="session")
def redis_cluster_url(stack_dir: Path, stack_registry: PidRegistry) -> Iterator[str]:
    """A three-master Redis Cluster's ``redis+cluster://`` URL (every master listed)."""
    yield from _external_or_started(
        "REDIS_CLUSTER_URL",
        lambda: infra.start_redis_cluster(
            stack_dir / "redis-cluster",
            infra.free_cluster_ports(3),
            registry=stack_registry,
            log_dir=stack_dir,
        ),
    )


@pytest.fixture
def redis_mode(request: pytest.FixtureRequest) -> str:
    """``"single"`` or ``"cluster"``: the Redis deployment ``redis_url`` names."""
    return str(getattr(request, "param", "single"))


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, redis_mode: str) -> str:
    """The session's Redis (a server or, in ``cluster`` mode, a cluster), emptied first."""
    url = str(
        request.getfixturevalue(
            "redis_cluster_url" if redis_mode == "cluster" else "redis_server_url"
        )
    )
    flush_redis(url)
    return url


def flush_redis(url: str) -> None:
    """Empty the Redis ``url`` names: the database of one server, every master of a cluster."""
    from storefront_kit.redis import cluster_nodes, is_cluster_url

    if is_cluster_url(url):
        from redis.cluster import ClusterNode, RedisCluster

        cluster = RedisCluster(
            startup_nodes=[
                ClusterNode(host, port)  # type: ignore[no-untyped-call]
                for host, port in cluster_nodes(url)
            ]
        )
        try:
            cluster.flushdb(target_nodes=RedisCluster.PRIMARIES)
        finally:
            cluster.close()
        return
    from redis import Redis

    client = Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.fixture(scope="session")
def elasticsearch_url(stack_dir: Path, stack_registry: PidRegistry) -> Iterator[str]:
    """An Elasticsearch URL (single node, security off)."""
    yield from _external_or_started(
        "ELASTICSEARCH_URL",
        lambda: infra.start_elasticsearch(
            infra.ensure_elasticsearch(REPO_ROOT / ".stack" / "cache"),
            stack_dir / "elasticsearch",
            free_port(),
            registry=stack_registry,
            log_file=stack_dir / "elasticsearch.log",
        ),
    )


def create_test_database(server_url: str, package: str | None = None) -> str:
    """A new, uniquely named database (migrated by ``package`` when given); asyncpg URL."""
    name = f"test_{(package or 'db').removesuffix('_service')}_{uuid.uuid4().hex[:10]}"
    infra.create_databases(server_url, [name])
    base = server_url.rstrip("/")
    if base.count("/") > 2:
        base = base.rsplit("/", 1)[0]
    url = base.replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{name}"
    if package is not None:
        from storefront_kit.migrations import upgrade

        upgrade(package, url)
    return url


def database_fixture(package: str) -> Any:
    """A module-scoped ``database_url`` fixture: a fresh database migrated for ``package``.

    A service's conftest says ``database_url = database_fixture("auth_service")``.
    """

    @pytest.fixture(scope="module", name="database_url")
    async def database_url(postgres_server_url: str) -> str:
        return await asyncio.to_thread(create_test_database, postgres_server_url, package)

    return database_url


#: Orders' Redis watch for tests: only seconds of silence mean Redis is down. On a loaded
#: test machine a slow ping is load, and a checkout must not stop waiting for it (the
#: frozen-Redis tests set their own).
UNHURRIED_REDIS_WATCH = {
    "redis_watch_interval_ms": 1_000,
    "redis_watch_timeout_ms": 1_000,
    "redis_watch_misses": 3,
}

# Every test reaches the gateway from one loopback address, so the per-IP limits (30
# code requests per 10 minutes in production) would be spent by the first modules'
# logins and later tests would get a 429 or not depending on how fast the run is. The
# per-phone limits stay as shipped; the per-IP ones have their own tests
# (services/auth/tests/test_otp.py).
ONE_CLIENT_ADDRESS_LIMITS = {
    "AUTH_OTP_IP_RATE_LIMIT": "100000/10minutes",
    "AUTH_OTP_VERIFY_IP_RATE_LIMIT": "100000/10minutes",
    "AUTH_REFRESH_IP_RATE_LIMIT": "100000/10minutes",
}


@pytest.fixture(scope="session")
def platform(
    stack_dir: Path, postgres_server_url: str, elasticsearch_url: str
) -> Iterator[Platform]:
    """The whole platform behind nginx on free ports, with its own Redis."""
    options = PlatformOptions.for_tests(
        stack_dir / "platform",
        # The session's server: the platform's databases are named after services, and no
        # test database is (they are test_<name>_<random>).
        database_url=postgres_server_url,
        elasticsearch_url=elasticsearch_url,
        tracing=True,
        env_overrides={
            "GATEWAY_AUTH_RATE": "20r/s",
            "GATEWAY_AUTH_BURST": "40",
            **ONE_CLIENT_ADDRESS_LIMITS,
            # Tracing is installed (spans to the OTLP stand-in) but starts no trace of its
            # own: only a request that arrives with a sampled traceparent is traced
            # (tests/e2e/test_tracing.py sends one). Recording every test's requests would
            # cost every checkout ~20-40 % more CPU (docs/benchmarks.md, "Tracing").
            "STOREFRONT_TRACE_SAMPLE_RATIO": "0",
            # The dependency watches, patient enough that a loaded CI machine's slow ping
            # never trips a breaker in the middle of another test (known down in 2 s
            # rather than 0.65 s; tests/e2e/test_outage.py waits what these say).
            **{
                f"{prefix}{name}": value
                for prefix in ("CATALOG_WATCH_", "ORDERS_REDIS_WATCH_")
                for name, value in (("INTERVAL_MS", "500"), ("TIMEOUT_MS", "500"), ("MISSES", "3"))
            },
        },
    )
    with running_platform(options) as running:
        yield running
