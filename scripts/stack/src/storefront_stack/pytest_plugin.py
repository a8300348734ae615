"""Pytest fixtures: the same real servers ``make run`` uses, started once per session.

Servers start lazily: a unit test that asks for none of these fixtures needs none of
them. ``DATABASE_URL``, ``REDIS_URL`` and ``ELASTICSEARCH_URL`` point the suite at
external servers instead.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storefront_stack import infra
from storefront_stack.platform import REPO_ROOT, Platform, PlatformOptions
from storefront_stack.processes import PidRegistry, free_port

__all__ = ["create_test_database"]


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
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    server = infra.start_postgres(
        stack_dir / "postgres" / "data",
        free_port(),
        registry=stack_registry,
        log_file=stack_dir / "postgres.log",
        fast_unsafe=True,
    )
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def redis_server_url(stack_dir: Path, stack_registry: PidRegistry) -> Iterator[str]:
    """A Redis server URL (database 0)."""
    external = os.environ.get("REDIS_URL")
    if external:
        yield external
        return
    server = infra.start_redis(
        stack_dir / "redis",
        free_port(),
        registry=stack_registry,
        log_file=stack_dir / "redis.log",
        persistent=False,
    )
    yield server.url
    server.stop()


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """The session's Redis, emptied before the test."""
    from redis import Redis

    client = Redis.from_url(redis_server_url)
    try:
        client.flushdb()
    finally:
        client.close()
    return redis_server_url


@pytest.fixture(scope="session")
def elasticsearch_url(stack_dir: Path, stack_registry: PidRegistry) -> Iterator[str]:
    """An Elasticsearch URL (single node, security off)."""
    external = os.environ.get("ELASTICSEARCH_URL")
    if external:
        yield external
        return
    home = infra.ensure_elasticsearch(REPO_ROOT / ".stack" / "cache")
    server = infra.start_elasticsearch(
        home,
        stack_dir / "elasticsearch",
        free_port(),
        registry=stack_registry,
        log_file=stack_dir / "elasticsearch.log",
    )
    yield server.url
    server.stop()


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
    options = PlatformOptions(
        state_dir=stack_dir / "platform",
        free_ports=True,
        database_url=_fresh_server_namespace(postgres_server_url),
        elasticsearch_url=elasticsearch_url,
        log_to_files=True,
        fast_unsafe_db=True,
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
    running = Platform(options)
    running.start()
    yield running
    running.stop()


def _fresh_server_namespace(server_url: str) -> str:
    # The platform's databases are named after services; nothing else uses those names.
    return server_url
