"""WebSocket connections held by ws-gateway processes, and admin-alert fan-out latency.

Issue 7: one ws-gateway process holds 10,000 concurrent authenticated sockets with an
RSS under 1 GiB, and an alert published on ``admin.alerts`` reaches 1,000 admin sockets
with a p99 under 200 ms. Issue 20: two processes (replicas) hold 20,000 sockets between
them, each under 1 GiB, and one alert published once on Redis reaches the 1,000 admin
sockets spread over both (each replica receives it through its own pub/sub
subscription) with a p99 under 200 ms. Run against a platform started with
``make run`` (``WS_GATEWAY_REPLICAS=2 make run`` for two), from the repo root:

    .venv/bin/python bench/bench_ws.py --connections 10000 --admins 1000
    .venv/bin/python bench/bench_ws.py --connections 20000 --admins 1000   # two replicas

Which processes: ``--ports 8106,8116`` names them; without it the bench finds every
ws-gateway process the runner started (``<state-dir>/pids.json``: ``ws-gateway``, or
``ws-gateway-1``, ``ws-gateway-2``... with replicas, each on a loopback port of its own)
and the port each listens on; ``--port`` (or 8106 when nothing is found) is the one
process of issue 7. Sockets and admin sockets are dealt round-robin over the processes.

The bench signs access tokens with the runner's key (``<state-dir>/keys/auth-jwt.pem``),
connects straight to each gateway process (not through nginx, so the figures are the
processes' own), reads each process's RSS from ``/proc`` (via psutil) before and while
holding, then publishes numbered alerts on ``admin.alerts`` with their send time and
measures, on every admin socket, how long each took to arrive. Sockets send a ping now
and then, as the dashboard does, so the idle timeout never closes them. The machine's
load average (``/proc/loadavg``) is read before, while holding and after the alerts:
the bench shares the machine with what it measures.

Each socket is a file descriptor here: the client sockets are held by as many client
processes (forked, one event loop each) as the open-file hard limit needs, each raising
its soft ``RLIMIT_NOFILE`` to its share (a process cannot raise the hard limit without
``CAP_SYS_RESOURCE``, which root in a container usually lacks): 20,000 sockets under a
hard limit of 20,000 take two. ``--client-processes`` sets the count. The CPU the
gateways, the client processes and the whole machine used while the alerts went out
is reported next to the latencies.
"""

import argparse
import asyncio
import contextlib
import gc
import json
import math
import multiprocessing
import queue
import resource
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
from redis.asyncio import Redis
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from jwt_core_lib import SigningKey, TokenIssuer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PORT = 8106  # ws-gateway's port with one process (.env.example WS_GATEWAY_PORT)
SERVICE = "ws-gateway"
#: File descriptors the bench needs besides its sockets (Redis, stdio, the loop, psutil).
SPARE_FDS = 256
console = Console()


@dataclass
class Client:
    """One open socket and the alert latencies it saw."""

    admin: bool
    socket: aiohttp.ClientWebSocketResponse
    latencies: list[float] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)


@dataclass
class Admin:
    """What one admin socket saw, as a client process reports it."""

    gateway: int  # index into the gateways
    latencies: list[float]
    seen: int  # distinct alerts received


@dataclass
class Share:
    """What one client process reports once the alerts are drained."""

    failures: dict[int, Counter[str]]  # gateway index -> exception names
    admins: list[Admin]


@dataclass
class Gateway:
    """One ws-gateway process: where it listens, and what the bench measured of it."""

    name: str
    port: int
    process: psutil.Process
    failures: Counter[str] = field(default_factory=Counter)
    admins: list[Admin] = field(default_factory=list)
    rss_before: float = 0.0
    rss_held: float = 0.0
    held: int = 0  # sockets open when rss_held was read
    alert_cores: float = 0.0  # CPU (user + system) it used while the alerts went out

    def kib_per_socket(self) -> str:
        if not self.held:
            return "-"
        return f"{(self.rss_held - self.rss_before) * 1024 / self.held:,.1f}"


def _issuer(state_dir: Path) -> TokenIssuer:
    pem = (state_dir / "keys" / "auth-jwt.pem").read_text()
    return TokenIssuer(signing_key=SigningKey.from_pem(pem), issuer="storefront-auth")


def _listening_process(port: int) -> psutil.Process:
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            if connection.pid is None:
                break
            return psutil.Process(connection.pid)
    raise SystemExit(f"no process listens on port {port}: is `make run` up?")


def _listening_ports(root: psutil.Process) -> list[tuple[psutil.Process, int]]:
    """The TCP ports ``root`` or one of its descendants listens on."""
    found: list[tuple[psutil.Process, int]] = []
    for process in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            for connection in process.net_connections(kind="tcp"):
                if connection.status == psutil.CONN_LISTEN:
                    found.append((process, connection.laddr.port))
    return found


def _discover(state_dir: Path) -> list[tuple[str, int]]:
    """Every ws-gateway process the runner started, from its pid registry, with its port.

    The registry maps process names to the process-group leaders the runner spawned:
    ``ws-gateway`` alone, or ``ws-gateway-1``, ``ws-gateway-2``... with replicas (whose
    ports are free ports picked at start-up, so they are read from ``/proc``).
    """
    try:
        registry: dict[str, int] = json.loads((state_dir / "pids.json").read_text())
    except (OSError, ValueError):
        return []
    found: list[tuple[str, int]] = []
    for name, pid in sorted(registry.items()):
        suffix = name.removeprefix(f"{SERVICE}-")
        if name != SERVICE and not (name.startswith(f"{SERVICE}-") and suffix.isdigit()):
            continue
        try:
            ports = _listening_ports(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
        found.extend((name, port) for _process, port in ports)
    return found


def _gateways(args: argparse.Namespace) -> list[Gateway]:
    if args.ports or args.port:
        ports = args.ports or [args.port]
        named = [
            (SERVICE if len(ports) == 1 else f"{SERVICE} #{i}", port)
            for i, port in enumerate(ports, 1)
        ]
    else:
        named = _discover(args.state_dir) or [(SERVICE, DEFAULT_PORT)]
    return [Gateway(name=name, port=port, process=_listening_process(port)) for name, port in named]


def _client_processes(connections: int) -> int:
    """How many client processes the open-file hard limit needs for ``connections``.

    A process cannot raise its hard limit without CAP_SYS_RESOURCE (a container's root
    usually lacks it), so 20,000 sockets under a hard limit of 20,000 take two."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return 1
    return max(1, math.ceil(connections / (hard - SPARE_FDS)))


def _raise_fd_limit(needed: int) -> str:
    """Raise this process's soft open-file limit to ``needed`` (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return f"{soft:,} (enough)"
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(
            f"{needed:,} file descriptors needed in one process, the hard limit is "
            f"{hard:,}: use more --client-processes"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return f"{soft:,} → {needed:,}"


def _rss_mib(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / 2**20


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def _open(session: aiohttp.ClientSession, url: str, token: str, admin: bool) -> Client:
    # aiohttp's client reads frames in C and needs no task per socket: with the
    # `websockets` client, reading 1,000 sockets in this one process added its own
    # delay (the last socket read waited for the 999 before it) to every figure.
    socket = await session.ws_connect(
        url,
        protocols=("bearer", token),
        compress=15,  # offer permessage-deflate, as browsers do
        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10),
        autoping=True,
        heartbeat=None,
        max_msg_size=64 * 1024,
    )
    welcome = orjson.loads(await socket.receive_str())
    if welcome.get("type") != "welcome":
        raise RuntimeError(f"unexpected first message {welcome!r}")
    return Client(admin=admin, socket=socket)


async def _read(client: Client) -> None:
    async for frame in client.socket:
        if frame.type != aiohttp.WSMsgType.TEXT:
            continue
        arrived = time.time()
        message = orjson.loads(frame.data)
        if message.get("channel") != "admin.alerts":
            continue
        data = message.get("data", {})
        client.latencies.append(arrived - data["sent_at"])
        client.seen.add(data["seq"])


async def _keepalive(clients: list[Client], every_s: float, tick_s: float = 0.1) -> None:
    # Each socket pings once per interval, the pings spread over ticks of 100 ms (as many
    # dashboards would): 10,000 pings in one burst measured the burst, not the fan-out.
    # The ticks keep to the clock, catching up when late: with a sleep after each ping, a
    # loop busy opening sockets on a loaded machine stretched one round past the
    # server's 60 s idle timeout and a quarter of 20,000 sockets were closed (4408).
    slots = max(1, round(every_s / tick_s))
    tick = 0
    next_at = time.monotonic()
    while True:
        for client in clients[tick % slots :: slots]:  # socket i pings in ticks i mod slots
            if not client.socket.closed:
                with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                    await client.socket.send_str('{"type":"ping"}')
        tick += 1
        next_at += tick_s
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=100)
    return q[49] * 1000, q[94] * 1000, q[98] * 1000


def _fan_out(admins: list[Admin]) -> str:
    latencies = [value for admin in admins for value in admin.latencies]
    if len(latencies) < 2:
        return "no alerts arrived"
    p50, p95, p99 = _quantiles(latencies)
    return f"p50 {p50:.0f} / p95 {p95:.0f} / p99 {p99:.0f} ms"


def _complete(admins: list[Admin], alerts: int) -> str:
    return f"{sum(1 for admin in admins if admin.seen == alerts):,} of {len(admins):,}"


# --- a client process: its share of the sockets ---------------------------------------


def _client_process(
    k: int,
    processes: int,
    args: argparse.Namespace,
    ports: list[int],
    opened: Any,  # multiprocessing Array of ints: attempts per (process, gateway)
    measure: Event,
    finish: Event,
    results: "multiprocessing.Queue[tuple[Any, ...]]",
) -> None:
    try:
        share = len(range(k, args.connections, processes))
        limit = _raise_fd_limit(share + SPARE_FDS)
        asyncio.run(_client(k, processes, args, ports, opened, measure, finish, results, limit))
    except BaseException as exc:
        results.put(("error", k, repr(exc)))
        raise


async def _client(
    k: int,
    processes: int,
    args: argparse.Namespace,
    ports: list[int],
    opened: Any,
    measure: Event,
    finish: Event,
    results: "multiprocessing.Queue[tuple[Any, ...]]",
    fd_limit: str,
) -> None:
    connector = aiohttp.TCPConnector(limit=0)  # no pool cap: every socket stays open
    async with aiohttp.ClientSession(connector=connector) as session:
        issuer = _issuer(args.state_dir)
        clients: list[tuple[int, Client]] = []
        sockets: list[Client] = []  # the same, for the keepalive
        readers: list[asyncio.Task[None]] = []
        failures: dict[int, Counter[str]] = {g: Counter() for g in range(len(ports))}
        limit = asyncio.Semaphore(max(1, args.parallel // processes))

        async def connect(index: int) -> None:
            # Round-robin: socket i (an admin's while i < --admins) goes to process
            # i mod n, so sockets and admin sockets are spread evenly over the processes.
            gateway = index % len(ports)
            admin = index < args.admins
            token = issuer.issue(
                subject=f"bench-{uuid.uuid4().hex[:12]}",
                audience="storefront",
                ttl=timedelta(minutes=30),
                roles=("admin",) if admin else ("customer",),
            )
            async with limit:
                try:
                    url = f"ws://127.0.0.1:{ports[gateway]}/ws"
                    client = await _open(session, url, token, admin)
                    clients.append((gateway, client))
                    sockets.append(client)
                    # Read from the start: aiohttp answers the server's pings only while
                    # a socket is being read, and unanswered pings close it (1011).
                    readers.append(asyncio.create_task(_read(client)))
                except Exception as exc:
                    failures[gateway][type(exc).__name__] += 1
                opened[k * len(ports) + gateway] += 1

        # Ping from the start, as the dashboard does: sockets opened first must not reach
        # the idle timeout while the rest are still connecting.
        keepalive = asyncio.create_task(_keepalive(sockets, args.ping_every))
        await asyncio.gather(*(connect(i) for i in range(k, args.connections, processes)))
        # The client's sockets are long-lived objects: keep its collector from walking
        # them in the middle of a fan-out (a pause here is not the server's).
        gc.freeze()
        results.put(("ready", k, fd_limit))

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, measure.wait)
        held = Counter(gateway for gateway, client in clients if not client.socket.closed)
        closed = Counter(
            str(client.socket.close_code) for _g, client in clients if client.socket.closed
        )
        results.put(("held", k, held, closed))

        await loop.run_in_executor(None, finish.wait)
        keepalive.cancel()
        for _gateway, client in clients:
            with contextlib.suppress(Exception):
                await client.socket.close()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        admins = [
            Admin(gateway=gateway, latencies=client.latencies, seen=len(client.seen))
            for gateway, client in clients
            if client.admin
        ]
        results.put(("result", k, Share(failures=failures, admins=admins)))


# --- the coordinator: spreads the sockets, reads RSS, publishes, reports ---------------


def _collect(
    results: "multiprocessing.Queue[tuple[Any, ...]]",
    workers: list[Any],
    kind: str,
    tick: Any = None,
) -> list[tuple[Any, ...]]:
    """Wait for one message of ``kind`` from each client process."""
    got: list[tuple[Any, ...]] = []
    while len(got) < len(workers):
        if tick is not None:
            tick()
        try:
            message = results.get(timeout=0.2)
        except queue.Empty:
            # A client killed outright (the OOM killer, a signal) reports nothing.
            dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if dead:
                raise SystemExit(f"a client process died (exit codes {dead})") from None
            continue
        if message[0] == "error":
            raise SystemExit(f"client process {message[1]} failed: {message[2]}")
        if message[0] != kind:
            raise SystemExit(f"expected {kind!r} from the client processes, got {message[0]!r}")
        got.append(message)
    return got


async def _publish(args: argparse.Namespace) -> None:
    # Published once: every ws-gateway process subscribed to the channel gets it from Redis.
    async with Redis.from_url(args.redis) as redis:
        for seq in range(args.alerts):
            alert = {"type": "bench.alert", "data": {"seq": seq, "sent_at": time.time()}}
            await redis.publish("admin.alerts", orjson.dumps(alert))
            await asyncio.sleep(args.alert_gap)


def main(args: argparse.Namespace) -> int:
    gateways = _gateways(args)
    ports = [gateway.port for gateway in gateways]
    processes = args.client_processes or _client_processes(args.connections)
    for gateway in gateways:
        gateway.rss_before = _rss_mib(gateway.process)
    load = {"before": _loadavg()}

    # Forked before any event loop runs here; the children inherit the parsed arguments.
    context = multiprocessing.get_context("fork")
    opened = context.Array("i", processes * len(ports), lock=False)
    measure, finish = context.Event(), context.Event()
    results: multiprocessing.Queue[tuple[Any, ...]] = context.Queue()
    workers = [
        context.Process(
            target=_client_process,
            args=(k, processes, args, ports, opened, measure, finish, results),
            daemon=True,
        )
        for k in range(processes)
    ]
    for worker in workers:
        worker.start()

    started = time.perf_counter()
    with Progress(console=console) as progress:
        tasks = [
            progress.add_task(
                f"opening sockets on {gateway.name} (:{gateway.port})",
                total=len(range(g, args.connections, len(gateways))),
            )
            for g, gateway in enumerate(gateways)
        ]

        def tick() -> None:
            for g, task in enumerate(tasks):
                done = sum(opened[k * len(ports) + g] for k in range(processes))
                progress.update(task, completed=done)

        ready = _collect(results, workers, "ready", tick)
        tick()
    open_s = time.perf_counter() - started

    time.sleep(args.hold)
    measure.set()
    load["holding"] = _loadavg()
    for gateway in gateways:
        gateway.rss_held = _rss_mib(gateway.process)
    closed: Counter[str] = Counter()
    for _kind, _k, held, closed_codes in _collect(results, workers, "held"):
        closed += closed_codes
        for g, count in held.items():
            gateways[g].held += count

    # CPU while the alerts go out: the gateways', the bench's own and the machine's (the
    # bench shares its two cores with what it measures, and with anything else running).
    clients = [psutil.Process(worker.pid) for worker in workers if worker.pid is not None]
    watched = [gateway.process for gateway in gateways] + clients
    cpu_before = [_cpu_s(process) for process in watched]
    psutil.cpu_percent(None)
    alerts_started = time.perf_counter()
    asyncio.run(_publish(args))
    alerts_s = time.perf_counter() - alerts_started
    machine_busy = psutil.cpu_percent(None)
    used = [
        (_cpu_s(process) - before) / alerts_s
        for process, before in zip(watched, cpu_before, strict=True)
    ]
    for gateway, cores in zip(gateways, used, strict=False):
        gateway.alert_cores = cores
    load["after alerts"] = _loadavg()
    cpu = (
        f"ws-gateways {sum(used[: len(gateways)]):.2f}, bench clients "
        f"{sum(used[len(gateways) :]):.2f} of the machine's {psutil.cpu_count()} cores, "
        f"machine {machine_busy:.0f} % busy"
    )
    time.sleep(args.drain)  # let the last alert land everywhere
    finish.set()
    for _kind, _k, share in _collect(results, workers, "result"):
        for g, failed in share.failures.items():
            gateways[g].failures += failed
        for admin in share.admins:
            gateways[admin.gateway].admins.append(admin)
    for worker in workers:
        worker.join(timeout=30)

    _report(args, gateways, processes, open_s, closed, load, cpu, [m[2] for m in ready])
    return 0


def _report(
    args: argparse.Namespace,
    gateways: list[Gateway],
    processes: int,
    open_s: float,
    closed: Counter[str],
    load: dict[str, str],
    cpu: str,
    fd_limits: list[str],
) -> None:
    admins = [admin for gateway in gateways for admin in gateway.admins]
    failures = sum((gateway.failures for gateway in gateways), Counter[str]())
    held = sum(gateway.held for gateway in gateways)
    opened = held + sum(closed.values())
    several = len(gateways) > 1
    title = f"ws-gateway: {len(gateways)} processes" if several else "ws-gateway: one process"
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row(
        "sockets opened", f"{opened:,} (failed: {dict(failures) or 0})", f"{args.connections:,}"
    )
    table.add_row(
        "open after hold", f"{held:,} (closed: {dict(closed) or 0})", f"{args.connections:,}"
    )
    table.add_row("time to open", f"{open_s:.1f} s", "")
    table.add_row(
        f"alert fan-out to {len(admins):,} admins" + (" (all processes)" if several else ""),
        _fan_out(admins),
        "p99 < 200 ms",
    )
    table.add_row(
        f"admins that got all {args.alerts} alerts", _complete(admins, args.alerts), "all"
    )
    table.add_row("load average (1/5/15 min)", "; ".join(f"{k} {v}" for k, v in load.items()), "")
    table.add_row("CPU while the alerts went out (cores)", cpu, "")
    table.add_row(
        "client processes (open-file limit each)", f"{processes} ({'; '.join(fd_limits)})", ""
    )
    console.print(table)

    # Per process: its own RSS, what each socket added to it, its admins' fan-out.
    table = Table(title="per ws-gateway process")
    for column in ("process", "port", "pid", "sockets held", "admins"):
        table.add_column(column, justify="left" if column == "process" else "right")
    table.add_column("RSS before → holding (< 1,024 MiB)", justify="right")
    table.add_column("KiB per socket", justify="right")
    table.add_column("fan-out to its admins", justify="right")
    table.add_column("got every alert", justify="right")
    table.add_column("CPU during alerts", justify="right")
    for gateway in gateways:
        table.add_row(
            gateway.name,
            str(gateway.port),
            str(gateway.process.pid),
            f"{gateway.held:,}",
            f"{len(gateway.admins):,}",
            f"{gateway.rss_before:,.0f} → {gateway.rss_held:,.0f} MiB",
            gateway.kib_per_socket(),
            _fan_out(gateway.admins),
            _complete(gateway.admins, args.alerts),
            f"{gateway.alert_cores:.2f} core",
        )
    console.print(table)


def _ports(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--ports",
        type=_ports,
        help="ws-gateway processes' ports, comma-separated (default: the runner's, found)",
    )
    where.add_argument("--port", type=int, help="one ws-gateway process's port")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=ROOT / ".stack" / "run",
        help="the runner's state (its signing key and pid registry)",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--admins", type=int, default=1_000)
    parser.add_argument(
        "--client-processes",
        type=int,
        default=0,
        help="processes holding the client sockets (default: as few as the open-file "
        "hard limit allows)",
    )
    parser.add_argument("--parallel", type=int, default=200, help="handshakes in flight")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds to hold before alerts")
    parser.add_argument("--alerts", type=int, default=50)
    parser.add_argument("--alert-gap", type=float, default=0.1, help="seconds between alerts")
    parser.add_argument("--ping-every", type=float, default=20.0)
    parser.add_argument("--drain", type=float, default=10.0, help="seconds to wait for stragglers")
    raise SystemExit(main(parser.parse_args()))
