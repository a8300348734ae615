"""WebSocket connections one gateway process holds, and admin-alert fan-out latency.

Issue 7: one ws-gateway process holds 10,000 concurrent authenticated sockets with an
RSS under 1 GiB, and an alert published on ``admin.alerts`` reaches 1,000 admin sockets
with a p99 under 200 ms. Run against a platform started with ``make run`` (fixed ports),
from the repo root:

    .venv/bin/python bench/bench_ws.py --connections 10000 --admins 1000

The bench signs access tokens with the runner's key (``.stack/run/keys/auth-jwt.pem``),
connects straight to the gateway process (not through nginx, so the figure is the
process's own), reads that process's RSS from ``/proc`` (found by its listening port),
then publishes numbered alerts on ``admin.alerts`` with their send time and measures,
on every admin socket, how long each took to arrive. Sockets send a ping now and then,
as the dashboard does, so the idle timeout never closes them.
"""

import argparse
import asyncio
import contextlib
import gc
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import aiohttp
import orjson
import psutil
from redis.asyncio import Redis
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from jwt_core_lib import SigningKey, TokenIssuer

ROOT = Path(__file__).resolve().parents[1]
console = Console()


@dataclass
class Client:
    """One open socket and the alert latencies it saw."""

    admin: bool
    socket: aiohttp.ClientWebSocketResponse
    latencies: list[float] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)


def _issuer() -> TokenIssuer:
    pem = (ROOT / ".stack/run/keys/auth-jwt.pem").read_text()
    return TokenIssuer(signing_key=SigningKey.from_pem(pem), issuer="storefront-auth")


def _gateway_process(port: int) -> psutil.Process:
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            if connection.pid is None:
                break
            return psutil.Process(connection.pid)
    raise SystemExit(f"no process listens on port {port}: is `make run` up?")


def _rss_mib(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / 2**20


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


async def _keepalive(clients: list[Client], every_s: float) -> None:
    # Each socket pings once per interval, the pings spread evenly over it (as many
    # dashboards would): 10,000 pings in one burst measured the burst, not the fan-out.
    while True:
        batch = list(clients)
        if not batch:
            await asyncio.sleep(every_s)
            continue
        gap = every_s / len(batch)
        for client in batch:
            if not client.socket.closed:
                with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                    await client.socket.send_str('{"type":"ping"}')
            await asyncio.sleep(gap)


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=100)
    return q[49] * 1000, q[94] * 1000, q[98] * 1000


async def main(args: argparse.Namespace) -> int:
    connector = aiohttp.TCPConnector(limit=0)  # no pool cap: every socket stays open
    async with aiohttp.ClientSession(connector=connector) as session:
        return await _run(session, args)


async def _run(session: aiohttp.ClientSession, args: argparse.Namespace) -> int:
    process = _gateway_process(args.port)
    issuer = _issuer()
    url = f"ws://127.0.0.1:{args.port}/ws"
    rss_before = _rss_mib(process)
    clients: list[Client] = []
    readers: list[asyncio.Task[None]] = []
    failures: Counter[str] = Counter()
    limit = asyncio.Semaphore(args.parallel)

    async def connect(index: int) -> None:
        admin = index < args.admins
        token = issuer.issue(
            subject=f"bench-{uuid.uuid4().hex[:12]}",
            audience="storefront",
            ttl=timedelta(minutes=30),
            roles=("admin",) if admin else ("customer",),
        )
        async with limit:
            try:
                client = await _open(session, url, token, admin)
                clients.append(client)
                # Read from the start: aiohttp answers the server's pings only while a
                # socket is being read, and unanswered pings close it (1011).
                readers.append(asyncio.create_task(_read(client)))
            except Exception as exc:
                failures[type(exc).__name__] += 1
            progress.advance(task)

    # Ping from the start, as the dashboard does: sockets opened first must not reach
    # the idle timeout while the rest are still connecting.
    keepalive = asyncio.create_task(_keepalive(clients, args.ping_every))
    started = time.perf_counter()
    with Progress(console=console) as progress:
        task = progress.add_task("opening sockets", total=args.connections)
        await asyncio.gather(*(connect(i) for i in range(args.connections)))
    open_s = time.perf_counter() - started
    # The client's 10,000 sockets are long-lived objects: keep its collector from
    # walking them in the middle of a fan-out (a pause here is not the server's).
    gc.freeze()
    await asyncio.sleep(args.hold)
    still_open = sum(1 for client in clients if not client.socket.closed)
    closed = Counter(str(client.socket.close_code) for client in clients if client.socket.closed)
    rss_held = _rss_mib(process)

    admins = [client for client in clients if client.admin]
    async with Redis.from_url(args.redis) as redis:
        for seq in range(args.alerts):
            alert = {"type": "bench.alert", "data": {"seq": seq, "sent_at": time.time()}}
            await redis.publish("admin.alerts", orjson.dumps(alert))
            await asyncio.sleep(args.alert_gap)
    await asyncio.sleep(args.drain)  # let the last alert land everywhere

    keepalive.cancel()
    latencies = [value for client in admins for value in client.latencies]
    complete = sum(1 for client in admins if len(client.seen) == args.alerts)
    for client in clients:
        with contextlib.suppress(Exception):
            await client.socket.close()
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)

    table = Table(title="ws-gateway: one process")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row(
        "sockets opened",
        f"{len(clients):,} (failed: {dict(failures) or 0})",
        f"{args.connections:,}",
    )
    table.add_row(
        "open after hold", f"{still_open:,} (closed: {dict(closed) or 0})", f"{args.connections:,}"
    )
    table.add_row("time to open", f"{open_s:.1f} s", "")
    table.add_row("gateway RSS before", f"{rss_before:,.0f} MiB", "")
    table.add_row("gateway RSS holding", f"{rss_held:,.0f} MiB", "< 1,024 MiB")
    if latencies:
        p50, p95, p99 = _quantiles(latencies)
        table.add_row(
            f"alert fan-out to {len(admins):,} admins",
            f"p50 {p50:.0f} / p95 {p95:.0f} / p99 {p99:.0f} ms",
            "p99 < 200 ms",
        )
        table.add_row("admins that got every alert", f"{complete:,} of {len(admins):,}", "all")
    console.print(table)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8106, help="the ws-gateway process's port")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--admins", type=int, default=1_000)
    parser.add_argument("--parallel", type=int, default=200, help="handshakes in flight")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds to hold before alerts")
    parser.add_argument("--alerts", type=int, default=50)
    parser.add_argument("--alert-gap", type=float, default=0.1, help="seconds between alerts")
    parser.add_argument("--ping-every", type=float, default=20.0)
    parser.add_argument("--drain", type=float, default=10.0, help="seconds to wait for stragglers")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
