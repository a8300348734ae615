"""CPU per operation, per process of the platform: what a checkout, a search and a reservation cost.

Issue 17: a rate on a shared 2-core machine is noise; what decides how many machines a
load needs is the CPU each operation costs in each process, which is steady from run
to run. For each workload the bench reads user + system CPU (children reaped by a
process included, so PostgreSQL's exited backends count too) of every process group the
platform runner started, from ``/proc/<pid>/stat``, before and after a closed-loop run,
and divides by the operations that succeeded. Printed per process, next to the rate and
p50/p95/p99, for every concurrency asked for:

- ``checkout``: ``POST /api/v1/orders`` through nginx, the saga to CONFIRMED (zero-latency
  stand-ins), everything that follows it included (outbox relays, catalog's stock
  update, the receipt, the WebSocket relay) — the bench waits for the platform to go
  quiet before it reads the counters;
- ``search``: ``GET /api/v1/products/search`` through nginx over a few distinct queries
  (mostly cache hits, as a shop's searches are);
- ``reserve``: ``POST /internal/inventory/reserve`` + ``release`` straight to inventory
  (as orders calls it), one unit of a hot sku.

Each process's idle CPU rate, measured for a few seconds before each run, is
subtracted. The third-party stand-ins (``sandbox-*``) are shown but left out of the total, as is the
load generator (this process). By default the bench starts its own platform on free ports
(as the tests do); ``--state-dir .stack/run --gateway-url http://localhost:8080`` measures
one started with ``make run`` (the runner's ``pids.json`` and keys are read from there).

    .venv/bin/python bench/bench_cost.py --clients 4 16 --operations 400

Tracing (issue 21): the bench's own platform runs with tracing off unless asked
(``STOREFRONT_OTLP_ENDPOINT`` empty: nothing installed). ``--tracing on`` exports every
span to the OTLP stand-in (``sandbox-otlp``, left out of the total like the other
stand-ins: a collector's cost is not the platform's); ``--tracing both`` starts a
platform for each and prints their columns side by side:

    .venv/bin/python bench/bench_cost.py --workloads checkout --clients 4 --tracing both
"""

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from redis import Redis as SyncRedis
from rich.console import Console
from rich.table import Table

from benchlib import admin_headers, checkout, create_product, customer_headers, own_platform
from jwt_core_lib import ServiceTokenMinter, SigningKey, TokenIssuer

ROOT = Path(__file__).resolve().parents[1]
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
IDLE_S = 3.0
SEARCHES = ("headphones", "wireless", "laptop", "phone case", "camera")
console = Console()


# --- CPU from /proc ----------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, utime + stime + cutime + cstime in ticks) of ``pid``, if it lives."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return int(fields[1]), utime + stime + cutime + cstime


def cpu_by_group(groups: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process and all its descendants.

    By process tree, not process group: PostgreSQL's backends each start a session of
    their own. A descendant's reaped children are in its own counters
    (``cutime``/``cstime``), so a backend that exited between two readings is still
    counted, through the postmaster that waited for it.
    """
    stats = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    cpu = {}
    for name, root in groups.items():
        ticks, todo = 0, [root]
        while todo:
            pid = todo.pop()
            if pid in stats:
                ticks += stats[pid][1]
                todo.extend(children.get(pid, ()))
        cpu[name] = ticks / TICKS_PER_S
    return cpu


def platform_groups(state_dir: Path) -> dict[str, int]:
    """The processes the runner started, by name (its ``pids.json``)."""
    data = json.loads((state_dir / "pids.json").read_text())
    return {str(name): int(pgid) for name, pgid in data.items()}


# --- workloads ---------------------------------------------------------------------------


@dataclass
class Run:
    """One workload at one concurrency: outcomes, latencies and CPU per process group."""

    workload: str
    clients: int
    label: str = ""
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)
    succeeded: int = 0
    pending: list[str] = field(default_factory=list)
    #: Commands Redis ran during the run (its busy wait included), when its URL is known.
    redis_commands: int | None = None

    def answered(self, status: int) -> None:
        """One operation answered with ``status``: 200 is a success."""
        self.outcomes[str(status)] += 1
        self.succeeded += status == 200

    def quantiles_ms(self) -> tuple[float, float, float]:
        if len(self.latencies) < 2:
            return (0.0, 0.0, 0.0)
        q = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return (q[49] * 1000, q[94] * 1000, q[98] * 1000)

    def cpu_ms_per_op(self, name: str) -> float:
        return 1000 * self.cpu_s.get(name, 0.0) / self.succeeded if self.succeeded else 0.0

    def platform_ms_per_op(self) -> float:
        return sum(self.cpu_ms_per_op(name) for name in self.cpu_s if not _is_stand_in(name))


def _is_stand_in(name: str) -> bool:
    return name.startswith("sandbox-")


#: One operation of a workload, counted into the run; no answer (a client error or a
#: timeout) is counted by its kind by the loop.
Operation = Callable[[Run], Awaitable[None]]


async def closed_loop(run: Run, operation: Operation, operations: int) -> None:
    """``run.clients`` clients each doing operations back to back, ``operations`` in all."""
    remaining = operations

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            try:
                await operation(run)
            except (aiohttp.ClientError, TimeoutError) as exc:  # no answer: counted by kind
                run.outcomes[type(exc).__name__] += 1
            run.latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(run.clients)))
    run.seconds = time.perf_counter() - started


async def quiet(groups: dict[str, int], *, settle_s: float = 1.0, limit_s: float = 30.0) -> None:
    """Wait until the platform's processes stop burning CPU (relays, consumers, indexing)."""
    deadline = time.monotonic() + limit_s
    before = cpu_by_group(groups)
    while time.monotonic() < deadline:
        await asyncio.sleep(settle_s)
        now = cpu_by_group(groups)
        busy = sum(now.values()) - sum(before.values())
        if busy < 0.05 * settle_s:  # Elasticsearch and Redis idle at a few percent
            return
        before = now


@dataclass
class Platform:
    """What the workloads need of a running platform."""

    gateway: str
    state_dir: Path
    admin_headers: dict[str, str]
    inventory_url: str | None = None
    #: The platform's Redis, for the commands an operation costs (``INFO commandstats``).
    redis_url: str | None = None


def redis_commands(url: str | None) -> int | None:
    """Commands Redis has run since its start (all kinds), or None without a URL."""
    if url is None:
        return None
    client = SyncRedis.from_url(url)
    try:
        stats: Any = client.info("commandstats")
    finally:
        client.close()
    return sum(int(value["calls"]) for value in stats.values())


async def _product(platform: Platform, units: int) -> str:
    sku = f"BENCH-COST-{uuid.uuid4().hex[:8].upper()}"
    async with httpx.AsyncClient(base_url=platform.gateway, timeout=30) as client:
        for name in ("payments", "shipping"):  # zero latency, no faults
            (await client.post(f"/sandbox/{name}/faults", json={"mode": "ok"})).raise_for_status()
        await create_product(
            client, platform.admin_headers, sku, name="Bench cost headphones", units=units
        )
    return sku


async def checkouts(
    platform: Platform,
    session: aiohttp.ClientSession,
    clients: int,
    operations: int,
    warm_up: int | None = None,
) -> Run:
    sku = await _product(platform, units=10_000_000)
    async with httpx.AsyncClient(base_url=platform.gateway, timeout=30) as client:
        headers = await customer_headers(client)

    async def buy(run: Run) -> None:
        outcome, body = await checkout(session, f"{platform.gateway}/api/v1/orders", sku, headers)
        run.outcomes[outcome] += 1
        run.succeeded += outcome == "201 CONFIRMED"
        if body and outcome.startswith("202"):  # the saga still runs: counted once it ends
            run.pending.append(str(body["id"]))

    run = await _measured("checkout", platform, clients, operations, buy, warm_up)
    async with httpx.AsyncClient(base_url=platform.gateway, timeout=30) as client:
        for order_id in run.pending:
            order = (await client.get(f"/api/v1/orders/{order_id}", headers=headers)).json()
            run.outcomes[f"202 then {order['status']}"] += 1
            run.succeeded += order["status"] == "CONFIRMED"
    return run


async def searches(
    platform: Platform,
    session: aiohttp.ClientSession,
    clients: int,
    operations: int,
    warm_up: int | None = None,
) -> Run:
    counter = 0

    async def search(run: Run) -> None:
        nonlocal counter
        counter += 1
        query = SEARCHES[counter % len(SEARCHES)]
        async with session.get(
            f"{platform.gateway}/api/v1/products/search", params={"q": query, "size": "20"}
        ) as response:
            await response.read()
        run.answered(response.status)

    return await _measured("search", platform, clients, operations, search, warm_up)


async def reservations(
    platform: Platform,
    session: aiohttp.ClientSession,
    clients: int,
    operations: int,
    warm_up: int | None = None,
) -> Run:
    """Reserve then release one unit as orders does (the pair counts as one operation)."""
    assert platform.inventory_url is not None
    sku = await _product(platform, units=10_000_000)
    key = SigningKey.from_pem(
        (platform.state_dir / "keys" / "service-token-orders.pem").read_text()
    )
    minter = ServiceTokenMinter(
        issuer=TokenIssuer(signing_key=key, issuer="orders"), service_name="orders"
    )

    async def reserve(run: Run) -> None:
        order_id = str(uuid.uuid4())
        headers = {"Authorization": f"Bearer {minter.token_for('inventory')}"}
        async with session.post(
            f"{platform.inventory_url}/internal/inventory/reserve",
            json={"order_id": order_id, "items": [{"sku": sku, "qty": 1}], "ttl_s": 60},
            headers=headers,
        ) as response:
            await response.read()
        if response.status == 200:
            async with session.post(
                f"{platform.inventory_url}/internal/inventory/release",
                json={"order_id": order_id},
                headers=headers,
            ) as released:
                await released.read()
        run.answered(response.status)

    return await _measured("reserve", platform, clients, operations, reserve, warm_up)


async def _measured(
    workload: str,
    platform: Platform,
    clients: int,
    operations: int,
    operation: Operation,
    warm_up: int | None,
) -> Run:
    groups = platform_groups(platform.state_dir)
    # Unmeasured first: connection pools fill, first calls are paid. A fresh JVM also
    # compiles its hot code for minutes (Elasticsearch's JIT threads took about half of
    # its CPU in the first minute of a checkout load, session 17): --warm-up N measures
    # further from the start (that is a cost of starting, not of an operation).
    await closed_loop(
        Run(workload, clients),
        operation,
        warm_up if warm_up is not None else max(clients * 4, operations // 10),
    )
    await quiet(groups)
    # What each process burns doing nothing (Elasticsearch's and Redis's timers, the
    # relays' polls) is not the operations' cost: measured now, subtracted below.
    idle_started, idle_before = time.monotonic(), cpu_by_group(groups)
    await asyncio.sleep(IDLE_S)
    idle_after = cpu_by_group(groups)
    idle_rate = {
        name: (idle_after[name] - idle_before[name]) / (time.monotonic() - idle_started)
        for name in groups
    }
    run = Run(workload, clients)
    commands_before = redis_commands(platform.redis_url)
    started, before = time.monotonic(), cpu_by_group(groups)
    await closed_loop(run, operation, operations)
    await quiet(groups)  # the work an operation causes after its answer is part of its cost
    elapsed, after = time.monotonic() - started, cpu_by_group(groups)
    commands_after = redis_commands(platform.redis_url)
    if commands_before is not None and commands_after is not None:
        # the two INFO calls themselves included: noise next to thousands of operations
        run.redis_commands = commands_after - commands_before
    run.cpu_s = {
        name: max(0.0, after[name] - before[name] - idle_rate[name] * elapsed) for name in groups
    }
    return run


WORKLOADS = {"checkout": checkouts, "search": searches, "reserve": reservations}


async def measure(platform: Platform, args: argparse.Namespace) -> list[Run]:
    runs = []
    connector = aiohttp.TCPConnector(limit=max(args.clients) + 16)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        for workload in args.workloads:
            for clients in args.clients:
                console.print(f"{workload}: {clients} clients, {args.operations} operations...")
                runs.append(
                    await WORKLOADS[workload](
                        platform, session, clients, args.operations, args.warm_up
                    )
                )
    return runs


def report(runs: list[Run]) -> None:
    names = sorted(
        {name for run in runs for name in run.cpu_s},
        key=lambda name: (_is_stand_in(name), name),
    )
    table = Table(title="CPU-ms per successful operation, per process group")
    table.add_column("process")
    for run in runs:
        label = f"\n{run.label}" if run.label else ""
        table.add_column(f"{run.workload}\n{run.clients} clients{label}", justify="right")
    for name in names:
        if _is_stand_in(name):
            continue
        table.add_row(name, *(f"{run.cpu_ms_per_op(name):.2f}" for run in runs))
    table.add_row(
        "[b]platform total[/b]", *(f"[b]{run.platform_ms_per_op():.1f}[/b]" for run in runs)
    )
    for name in names:
        if _is_stand_in(name):
            table.add_row(f"({name})", *(f"{run.cpu_ms_per_op(name):.2f}" for run in runs))
    table.add_section()
    table.add_row(
        "Redis commands per op",
        *(
            f"{run.redis_commands / run.succeeded:.1f}"
            if run.redis_commands is not None and run.succeeded
            else "-"
            for run in runs
        ),
    )
    table.add_row("operations/s", *(f"{run.succeeded / run.seconds:,.0f}" for run in runs))
    for label, index in (("p50 ms", 0), ("p95 ms", 1), ("p99 ms", 2)):
        table.add_row(label, *(f"{run.quantiles_ms()[index]:.0f}" for run in runs))
    table.add_row(
        "outcomes",
        *(", ".join(f"{k}: {v}" for k, v in run.outcomes.most_common(3)) for run in runs),
    )
    console.print(table)


@contextmanager
def platform_of_own(args: argparse.Namespace, *, tracing: bool = False) -> Iterator[Platform]:
    """A whole platform on free ports (as ``make test`` starts it); stopped on exit.

    ``tracing``: spans exported to the OTLP stand-in (the runner's default); without it,
    no endpoint, so nothing of OpenTelemetry is installed in the services.
    """
    with own_platform(
        console,
        "bench-cost-",
        state_dir=Path(args.own_state_dir) if args.own_state_dir else None,
        tracing=tracing,
        env_overrides={
            "GATEWAY_AUTH_RATE": "50r/s",
            "GATEWAY_AUTH_BURST": "100",
            # The bench measures cost, not the limits: searches must not get 429s.
            "GATEWAY_SEARCH_RATE": "100000r/s",
            "GATEWAY_SEARCH_BURST": "100000",
            "CATALOG_SEARCH_IP_RATE_LIMIT": "10000000/minute",
            **dict(item.split("=", 1) for item in args.env),
        },
    ) as (runner, endpoints):
        yield Platform(
            gateway=endpoints.gateway_url,
            state_dir=runner.state_dir,
            admin_headers=admin_headers(runner.platform_env["AUTH_JWT_SIGNING_KEY"]),
            inventory_url=f"http://127.0.0.1:{endpoints.service_ports['inventory']}",
            redis_url=endpoints.redis_url,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--workloads",
        nargs="+",
        choices=sorted(WORKLOADS),
        default=["checkout", "search", "reserve"],
    )
    parser.add_argument("--clients", nargs="+", type=int, default=[4, 16])
    parser.add_argument("--operations", type=int, default=400, help="per workload and concurrency")
    parser.add_argument(
        "--warm-up",
        type=int,
        metavar="N",
        help="unmeasured operations before each run (default: 4 per client or a tenth of "
        "--operations, whichever is more), for a platform further from its start (a "
        "fresh Elasticsearch compiles its hot code for minutes)",
    )
    parser.add_argument("--gateway-url", help="a running platform (default: start one)")
    parser.add_argument(
        "--state-dir",
        default=str(ROOT / ".stack" / "run"),
        help="with --gateway-url: the runner's state (pids.json, keys/)",
    )
    parser.add_argument(
        "--inventory-url",
        default="http://127.0.0.1:8103",
        help="with --gateway-url: inventory itself, for the reserve workload",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/0",
        help="with --gateway-url: the platform's Redis, for the commands per operation",
    )
    parser.add_argument("--own-state-dir", help="own platform only: keep its data and logs here")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="own platform only"
    )
    parser.add_argument(
        "--tracing",
        choices=("off", "on", "both"),
        default="off",
        help="own platform only: spans exported to the OTLP stand-in, or not, or both runs",
    )
    args = parser.parse_args()
    if args.gateway_url:
        state = Path(args.state_dir)
        platform = Platform(
            gateway=args.gateway_url,
            state_dir=state,
            admin_headers=admin_headers((state / "keys" / "auth-jwt.pem").read_text()),
            inventory_url=args.inventory_url,
            redis_url=args.redis_url,
        )
        report(asyncio.run(measure(platform, args)))
    else:
        runs: list[Run] = []
        for tracing in {"off": [False], "on": [True], "both": [False, True]}[args.tracing]:
            with platform_of_own(args, tracing=tracing) as platform:
                measured = asyncio.run(measure(platform, args))
            if args.tracing == "both":
                for run in measured:
                    run.label = "tracing on" if tracing else "tracing off"
            runs += measured
        report(runs)


if __name__ == "__main__":
    main()
