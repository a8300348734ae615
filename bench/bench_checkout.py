"""End-to-end checkouts per second through nginx, and latency at a fixed arrival rate.

Issue 6: ``POST /api/v1/orders`` through the gateway runs the whole saga (reserve in
inventory, authorize and capture at the payment stand-in, book a parcel at the shipping
stand-in, commit the stock) before it answers 201 CONFIRMED; the stand-ins answer at
zero latency. Two phases:

1. **throughput** - ``--concurrency`` clients check out back to back for ``--duration``
   seconds; reports confirmed checkouts per second (target: at least 200/s);
2. **latency** - an open loop firing ``--rate`` checkouts per second (default 50) for
   ``--duration`` seconds, whatever the answers take; reports p50/p95/p99 (target:
   p95 under 250 ms).

By default the script starts its own platform on free ports (as the e2e tests do:
``storefront_stack.platform``), logs a customer in through the Telegram stand-in, and
stops everything at the end. ``--gateway-url`` points it at a platform already running
(``make run``) instead; it then needs the runner's keys directory for the admin token.

    .venv/bin/python bench/bench_checkout.py --duration 20 --concurrency 64
"""

import argparse
import asyncio
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
from rich.console import Console
from rich.table import Table

from benchlib import admin_headers, checkout, create_product, customer_headers, own_platform

ROOT = Path(__file__).resolve().parents[1]
console = Console()


@dataclass
class Phase:
    """What one phase saw: outcomes by status and the latency of every checkout."""

    name: str
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    @property
    def confirmed(self) -> int:
        return self.outcomes["201 CONFIRMED"]

    def rate(self) -> float:
        return self.confirmed / self.seconds if self.seconds else 0.0

    def quantiles_ms(self) -> tuple[float, float, float]:
        if len(self.latencies) < 2:
            return (0.0, 0.0, 0.0)
        q = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return (q[49] * 1000, q[94] * 1000, q[98] * 1000)


async def _checkout(
    client: aiohttp.ClientSession, headers: dict[str, str], sku: str, phase: Phase
) -> None:
    started = time.perf_counter()
    outcome, body = await checkout(client, "/api/v1/orders", sku, headers)
    if body is not None:
        phase.latencies.append(time.perf_counter() - started)
    phase.outcomes[outcome] += 1


async def throughput(
    client: aiohttp.ClientSession,
    headers: dict[str, str],
    sku: str,
    *,
    clients: int,
    seconds: float,
) -> Phase:
    """Closed loop: ``clients`` shoppers checking out back to back."""
    phase = Phase("throughput")
    deadline = time.perf_counter() + seconds

    async def shopper() -> None:
        while time.perf_counter() < deadline:
            await _checkout(client, headers, sku, phase)

    started = time.perf_counter()
    await asyncio.gather(*(shopper() for _ in range(clients)))
    phase.seconds = time.perf_counter() - started
    return phase


async def latency(
    client: aiohttp.ClientSession, headers: dict[str, str], sku: str, *, rate: float, seconds: float
) -> Phase:
    """Open loop: one checkout every ``1/rate`` s, however long the earlier ones take."""
    phase = Phase(f"latency @ {rate:g}/s")
    tasks: list[asyncio.Task[None]] = []
    started = time.perf_counter()
    for n in range(int(rate * seconds)):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_checkout(client, headers, sku, phase)))
    await asyncio.gather(*tasks)
    phase.seconds = time.perf_counter() - started
    return phase


async def run(gateway: str, admin: dict[str, str], args: argparse.Namespace) -> list[Phase]:
    limits = httpx.Limits(max_connections=args.concurrency + 100, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=gateway, timeout=30, limits=limits) as client:
        for name in ("payments", "shipping"):  # zero latency, no faults
            response = await client.post(f"/sandbox/{name}/faults", json={"mode": "ok"})
            response.raise_for_status()
        sku = f"BENCH-CHECKOUT-{uuid.uuid4().hex[:8].upper()}"
        await create_product(client, admin, sku, name="Bench checkout product", units=10_000_000)
        headers = await customer_headers(client)
    # aiohttp for the load itself: httpx's pool, past a few dozen busy connections,
    # spends a core on its own bookkeeping and becomes what the bench measures.
    connector = aiohttp.TCPConnector(limit=args.concurrency + 100)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        base_url=gateway, connector=connector, timeout=timeout
    ) as shopper_client:
        console.print(f"warm-up ({args.warmup:g} s)...")
        await throughput(
            shopper_client, headers, sku, clients=args.concurrency, seconds=args.warmup
        )
        console.print(f"throughput: {args.concurrency} clients for {args.duration:g} s...")
        closed = await throughput(
            shopper_client, headers, sku, clients=args.concurrency, seconds=args.duration
        )
        console.print(f"latency: {args.rate:g} checkouts/s for {args.duration:g} s...")
        open_loop = await latency(
            shopper_client, headers, sku, rate=args.rate, seconds=args.duration
        )
    return [closed, open_loop]


def report(phases: list[Phase], args: argparse.Namespace) -> None:
    table = Table(title="Checkout through nginx (saga to CONFIRMED, sandboxes at zero latency)")
    for column in ("phase", "checkouts", "confirmed/s", "p50 ms", "p95 ms", "p99 ms", "outcomes"):
        table.add_column(column, justify="left" if column in ("phase", "outcomes") else "right")
    for phase in phases:
        p50, p95, p99 = phase.quantiles_ms()
        table.add_row(
            phase.name,
            f"{sum(phase.outcomes.values()):,}",
            f"{phase.rate():,.0f}",
            f"{p50:.0f}",
            f"{p95:.0f}",
            f"{p99:.0f}",
            ", ".join(f"{k}: {v}" for k, v in phase.outcomes.most_common()),
        )
    console.print(table)
    closed, open_loop = phases
    p95 = open_loop.quantiles_ms()[1]
    console.print(
        f"targets: >= 200 checkouts/s -> {closed.rate():.0f}/s "
        f"({'met' if closed.rate() >= 200 else 'missed'}); "
        f"p95 < 250 ms at {args.rate:g}/s -> {p95:.0f} ms ({'met' if p95 < 250 else 'missed'})"
    )


@contextmanager
def platform_of_own(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    """A whole platform of the bench's own: its gateway URL and user-token key."""
    with own_platform(
        console,
        "bench-checkout-",
        state_dir=Path(args.state_dir) if args.state_dir else None,
        env_overrides={
            "GATEWAY_AUTH_RATE": "50r/s",
            "GATEWAY_AUTH_BURST": "100",
            "ORDERS_WORKERS": str(args.orders_workers),
            "INVENTORY_WORKERS": str(args.inventory_workers),
            **dict(item.split("=", 1) for item in args.env),
        },
    ) as (platform, endpoints):
        yield endpoints.gateway_url, platform.platform_env["AUTH_JWT_SIGNING_KEY"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="clients in the throughput phase"
    )
    parser.add_argument("--rate", type=float, default=50.0, help="checkouts/s in the latency phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up, not counted")
    parser.add_argument("--gateway-url", help="a running platform (default: start one)")
    parser.add_argument(
        "--keys-dir",
        default=str(ROOT / ".stack" / "run" / "keys"),
        help="with --gateway-url: where the runner keeps auth-jwt.pem",
    )
    parser.add_argument("--state-dir", help="own platform only: keep its data and logs here")
    parser.add_argument("--orders-workers", type=int, default=1, help="own platform only")
    parser.add_argument("--inventory-workers", type=int, default=1, help="own platform only")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="own platform only: a setting for the services (repeatable), e.g. "
        "ORDERS_MAX_CONCURRENT_SAGAS=32",
    )
    args = parser.parse_args()
    if args.gateway_url:
        pem = (Path(args.keys_dir) / "auth-jwt.pem").read_text()
        phases = asyncio.run(run(args.gateway_url, admin_headers(pem), args))
    else:
        with platform_of_own(args) as (gateway, pem):
            phases = asyncio.run(run(gateway, admin_headers(pem), args))
    report(phases, args)


if __name__ == "__main__":
    main()
