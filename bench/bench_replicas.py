"""CPU per confirmed checkout with one and with two replicas of every service (issue 20).

The capacity model (docs/capacity.md) multiplies CPU per operation by the target rate;
that only holds if a second replica does not make each checkout dearer (no
serialisation on one process, row or key, no extra coordination). This bench starts
its own platform twice, first with one process per service, then with
``--replicas`` of each (``<SERVICE>_REPLICAS``), runs the same closed-loop checkout
load on each after a warm-up, and prints side by side, per process kind:

- CPU-ms (user + system, children included) per confirmed checkout, summed over the
  replicas of that kind; the stand-ins are shown but left out of the total;
- PostgreSQL commits and row writes per checkout, per database (``pg_stat_database``);
- Redis commands per checkout (``INFO commandstats``).

The platform total with replicas should stay within 15 % of one replica's.

    .venv/bin/python bench/bench_replicas.py --duration 20 --concurrency 8
"""

import argparse
import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import httpx
import psutil
from redis import Redis
from rich.console import Console
from rich.table import Table

from benchlib import admin_headers, checkout, create_product, customer_headers, own_platform

STAND_INS = ("sandbox-telegram", "sandbox-payments", "sandbox-shipping")
console = Console()


@dataclass
class Run:
    """What one platform configuration cost."""

    replicas: int
    confirmed: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    cpu_s: dict[str, float] = field(default_factory=dict)  # process kind -> CPU seconds
    commits: dict[str, int] = field(default_factory=dict)  # database -> commits
    row_writes: dict[str, int] = field(default_factory=dict)
    redis_calls: int = 0

    def per_checkout_ms(self, kind: str) -> float:
        return 1000 * self.cpu_s.get(kind, 0.0) / max(self.confirmed, 1)

    def total_ms(self) -> float:
        return sum(self.per_checkout_ms(k) for k in self.cpu_s if k not in STAND_INS)


def _kind(name: str) -> str:
    """``orders-2`` -> ``orders``; infrastructure and stand-ins keep their names."""
    head, _, tail = name.rpartition("-")
    return head if head and tail.isdigit() else name


def _cpu_by_kind(processes: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds so far of each process and its children, by kind."""
    totals: dict[str, float] = {}
    for name, pid in processes.items():
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        spent = 0.0
        for process in tree:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            spent += times.user + times.system
        totals[_kind(name)] = totals.get(_kind(name), 0.0) + spent
    return totals


async def _pg_stats(server_url: str) -> tuple[dict[str, int], dict[str, int]]:
    connection = await asyncpg.connect(server_url.rstrip("/") + "/postgres")
    try:
        rows = await connection.fetch(
            "SELECT datname, xact_commit, tup_inserted + tup_updated + tup_deleted AS writes "
            "FROM pg_stat_database WHERE datname IN ('auth', 'inventory', 'orders', "
            "'notifications')"
        )
        await connection.execute("SELECT pg_stat_clear_snapshot()")
    finally:
        await connection.close()
    return (
        {r["datname"]: int(r["xact_commit"]) for r in rows},
        {r["datname"]: int(r["writes"]) for r in rows},
    )


def _redis_calls(url: str) -> int:
    client = Redis.from_url(url)
    try:
        stats: Any = client.info("commandstats")
    finally:
        client.close()
    return sum(int(v["calls"]) for v in stats.values())


async def _load(gateway: str, pem: str, args: argparse.Namespace, measure: Any) -> Run:
    sku = f"BENCH-REPLICAS-{uuid.uuid4().hex[:8].upper()}"
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        await create_product(
            client, admin_headers(pem), sku, name="Bench replicas product", units=10_000_000
        )
        headers = await customer_headers(client)
    outcomes: Counter[str] = Counter()

    async def shopper(session: aiohttp.ClientSession, deadline: float) -> None:
        while time.perf_counter() < deadline:
            outcome, _ = await checkout(session, "/api/v1/orders", sku, headers)
            outcomes[outcome] += 1

    connector = aiohttp.TCPConnector(limit=args.concurrency + 10)
    async with aiohttp.ClientSession(
        base_url=gateway, connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        warm = time.perf_counter() + args.warmup
        await asyncio.gather(*(shopper(session, warm) for _ in range(args.concurrency)))
        outcomes.clear()
        before = await measure()
        started = time.perf_counter()
        deadline = started + args.duration
        await asyncio.gather(*(shopper(session, deadline) for _ in range(args.concurrency)))
        seconds = time.perf_counter() - started
        # Let the receipts and pushes of the last checkouts finish: their CPU counts too.
        await asyncio.sleep(args.settle)
        after = await measure()
    run = Run(replicas=0, seconds=seconds, outcomes=outcomes)
    run.confirmed = outcomes["201 CONFIRMED"]
    cpu0, commits0, writes0, redis0 = before
    cpu1, commits1, writes1, redis1 = after
    run.cpu_s = {k: cpu1.get(k, 0.0) - cpu0.get(k, 0.0) for k in cpu1}
    run.commits = {k: commits1[k] - commits0.get(k, 0) for k in commits1}
    run.row_writes = {k: writes1[k] - writes0.get(k, 0) for k in writes1}
    run.redis_calls = redis1 - redis0
    return run


def measure_platform(replicas: int, args: argparse.Namespace) -> Run:
    from storefront_stack.topology import SERVICES

    console.print(f"a platform with {replicas} replica(s) of every service")
    with own_platform(
        console,
        "bench-replicas-",
        replicas={s.name: replicas for s in SERVICES},
        env_overrides={"GATEWAY_AUTH_RATE": "50r/s", "GATEWAY_AUTH_BURST": "100"},
    ) as (platform, endpoints):
        pids = {
            name: process.process.pid
            for name, process in platform.processes.items()
            if process.process is not None
        }
        pids.update({s.name: s.process.process.pid for s in platform.servers if s.process.process})

        async def measure() -> tuple[Any, ...]:
            commits, writes = await _pg_stats(endpoints.postgres_url)
            return (_cpu_by_kind(pids), commits, writes, _redis_calls(endpoints.redis_url))

        run = asyncio.run(
            _load(
                endpoints.gateway_url,
                platform.platform_env["AUTH_JWT_SIGNING_KEY"],
                args,
                measure,
            )
        )
    run.replicas = replicas
    return run


def report(runs: list[Run]) -> None:
    table = Table(title="CPU-ms per confirmed checkout, by process kind (all its replicas)")
    table.add_column("process")
    for run in runs:
        table.add_column(f"{run.replicas} replica(s)", justify="right")
    kinds = sorted(
        {k for run in runs for k in run.cpu_s}, key=lambda k: -runs[0].per_checkout_ms(k)
    )
    for kind in kinds:
        label = f"{kind} (stand-in)" if kind in STAND_INS else kind
        table.add_row(label, *(f"{run.per_checkout_ms(kind):.1f}" for run in runs))
    table.add_row(
        "[b]total, without the stand-ins[/]", *(f"[b]{r.total_ms():.1f}[/]" for r in runs)
    )
    for database in ("orders", "inventory", "notifications", "auth"):
        table.add_row(
            f"PostgreSQL {database}: commits / row writes",
            *(
                f"{r.commits.get(database, 0) / max(r.confirmed, 1):.1f} / "
                f"{r.row_writes.get(database, 0) / max(r.confirmed, 1):.1f}"
                for r in runs
            ),
        )
    table.add_row("Redis commands", *(f"{r.redis_calls / max(r.confirmed, 1):.1f}" for r in runs))
    table.add_row(
        "confirmed checkouts (per s)",
        *(f"{r.confirmed} ({r.confirmed / r.seconds:.1f}/s)" for r in runs),
    )
    table.add_row(
        "outcomes", *(", ".join(f"{k}: {v}" for k, v in r.outcomes.most_common()) for r in runs)
    )
    console.print(table)
    if len(runs) == 2 and runs[0].total_ms():
        ratio = runs[1].total_ms() / runs[0].total_ms()
        verdict = "within" if ratio <= 1.15 else "NOT within"
        console.print(f"CPU per checkout with replicas / without: {ratio:.2f} ({verdict} 15 %)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of warm-up per run")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after the load")
    parser.add_argument("--concurrency", type=int, default=8, help="clients checking out")
    parser.add_argument("--replicas", type=int, default=2, help="replicas of the second run")
    args = parser.parse_args()
    runs = [measure_platform(1, args), measure_platform(args.replicas, args)]
    report(runs)


if __name__ == "__main__":
    main()
