"""Answers while Redis and Elasticsearch are frozen (issue 22): how fast, and what kind.

Starts its own platform (its own Redis and Elasticsearch, so freezing them touches
nothing else), creates a product, warms one cached search, then runs a small load
(``--clients`` loops, each: a cached search, an uncached search, a product page, the
catalog's readiness, and every fifth round a checkout), freezes Redis and Elasticsearch
with SIGSTOP ``--lead`` seconds into it for ``--pause`` seconds and resumes them with
SIGCONT. Prints, per request kind, the answers' kinds (200 / 202 / 503 code) and
p50/p95/p99/max latency in four phases: before the freeze; in flight at the freeze
(sent before, answered after); sent before the services' dependency watches can know
(``--detection``, by default the longest ``interval * misses + timeout`` of the watch
settings' defaults); and sent after. Then how many answers after detection took 100 ms
or more, how long after the thaw health was green again and whether every order settled.

    .venv/bin/python bench/bench_outage.py --pause 10 --clients 4
"""

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

from benchlib import own_platform
from jwt_core_lib import SigningKey, TokenIssuer
from storefront_stack.processes import frozen, listening_pid

console = Console()
TERMINAL = {"CONFIRMED", "FAILED", "CANCELLED"}


def _token(pem: str, *roles: str) -> str:
    issuer = TokenIssuer(signing_key=SigningKey.from_pem(pem), issuer="storefront-auth")
    return issuer.issue(
        subject=str(uuid.uuid4()), audience="storefront", ttl=timedelta(minutes=30), roles=roles
    )


def _order(sku: str) -> dict[str, Any]:
    return {
        "items": [{"sku": sku, "qty": 1}],
        "shipping_address": {"name": "Ada", "line1": "1 Main St", "city": "Berlin",
                             "postal_code": "10115", "country": "DE"},
        "payment": {"method": "card", "token": "tok_bench"},
    }  # fmt: skip


def _detection_s() -> float:
    """The longest a service's watch takes to know a frozen dependency, by default
    (1 s when the services have no watch settings: the code before the watch)."""
    from catalog_service.settings import CatalogSettings
    from orders_service.settings import OrdersSettings

    def default(settings: Any, name: str) -> int:
        return int(settings.model_fields[name].default)

    watches = ((CatalogSettings, "watch_"), (OrdersSettings, "redis_watch_"))
    if any(f"{watch}interval_ms" not in s.model_fields for s, watch in watches):
        return 1.0
    return (
        max(
            default(s, f"{watch}interval_ms") * default(s, f"{watch}misses")
            + default(s, f"{watch}timeout_ms")
            for s, watch in watches
        )
        / 1000
    )


def _phase(started: float, seconds: float, detection_s: float) -> str:
    if started < 0:
        return "1 before freeze" if started + seconds < 0 else "2 in flight at freeze"
    return "3 until detected" if started < detection_s else "4 after detection"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def bench(args: argparse.Namespace, gateway: str, pids: tuple[int, int], pem: str) -> None:
    admin = {"Authorization": f"Bearer {_token(pem, 'admin')}"}
    customer = {"Authorization": f"Bearer {_token(pem, 'customer')}"}
    sku = f"BENCH-{uuid.uuid4().hex[:8].upper()}"
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(gateway, timeout=timeout) as http:
        async with http.post(
            "/api/v1/admin/products",
            headers=admin,
            json={"sku": sku, "name": f"Bench kettle {sku}", "brand": "Brewster",
                  "category": "kitchen", "price": 1999, "currency": "EUR",
                  "initial_stock": 10_000},
        ) as created:  # fmt: skip
            product_id = (await created.json())["id"]
        cached = {"q": sku.lower()}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            async with http.get("/api/v1/products/search", params=cached) as r:
                if r.status == 200 and (await r.json())["total"] == 1:
                    break
            await asyncio.sleep(0.2)

        samples: list[tuple[str, str, float, float]] = []  # kind, answer, started, seconds
        orders: list[str] = []

        async def call(name: str, method: str, path: str, **kwargs: Any) -> None:
            started = time.monotonic()
            async with http.request(method, path, **kwargs) as response:
                body = await response.read()
                elapsed = time.monotonic() - started
                if response.status in (200, 201, 202):
                    answer = str(response.status)
                    if name == "checkout":
                        orders.append(json.loads(body)["id"])
                else:
                    answer = f"{response.status} {json.loads(body).get('code', '?')}"
            samples.append((name, answer, started, elapsed))

        async def client(worker: int, until: float) -> None:
            # Staggered, so that the freeze finds requests of every kind in flight.
            await asyncio.sleep(worker * 0.13)
            n = 0
            while time.monotonic() < until:
                n += 1
                await call("cached search", "GET", "/api/v1/products/search", params=cached)
                await call("uncached search", "GET", "/api/v1/products/search",
                           params={"q": f"w{worker}n{n}{uuid.uuid4().hex[:4]}"})  # fmt: skip
                await call("product page", "GET", f"/api/v1/products/{product_id}")
                await call("catalog health", "GET", "/health/catalog")
                if n % 5 == 0:
                    key = {"Idempotency-Key": str(uuid.uuid4())}
                    await call(
                        "checkout",
                        "POST",
                        "/api/v1/orders",
                        json=_order(sku),
                        headers={**customer, **key},
                    )
                await asyncio.sleep(0.02)

        until = time.monotonic() + args.lead + args.pause
        load = asyncio.gather(*(client(w, until) for w in range(args.clients)))
        await asyncio.sleep(args.lead)  # requests are in flight when the servers freeze
        with frozen(*pids):
            paused_at = time.monotonic()
            await load
        resumed = time.monotonic()
        while True:
            async with http.get("/health/catalog") as a, http.get("/health/orders") as b:
                if a.status == b.status == 200:
                    break
            await asyncio.sleep(0.1)
        green_after = time.monotonic() - resumed
        settle_deadline = time.monotonic() + 120
        states: Counter[str] = Counter()
        while time.monotonic() < settle_deadline:
            states = Counter()
            for order_id in orders:
                async with http.get(f"/api/v1/orders/{order_id}", headers=customer) as r:
                    states[(await r.json())["status"]] += 1
            if set(states) <= TERMINAL:
                break
            await asyncio.sleep(1)

    table = Table(title=f"answers while Redis and Elasticsearch were frozen ({args.pause:.0f} s)")
    for column in ("request", "phase", "n", "answers", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right" if "ms" in column or column == "n" else "left")
    groups: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
    slow_after = []
    for name, answer, started, seconds in samples:
        phase = _phase(started - paused_at, seconds, args.detection)
        groups[(name, phase)].append((answer, seconds))
        if phase.endswith("after detection") and seconds >= 0.1:
            slow_after.append((name, round(seconds * 1000, 1)))
    for (name, phase), rows in sorted(groups.items()):
        latencies = [s for _, s in rows]
        kinds = ", ".join(f"{k} x{v}" for k, v in Counter(a for a, _ in rows).most_common())
        table.add_row(name, phase[2:], str(len(rows)), kinds,
                      f"{_pct(latencies, 0.5):.1f}", f"{_pct(latencies, 0.95):.1f}",
                      f"{_pct(latencies, 0.99):.1f}", f"{max(latencies) * 1000:.1f}")  # fmt: skip
    after = sum(len(rows) for (_, phase), rows in groups.items() if phase.endswith("detection"))
    console.print(
        f"detection time {args.detection * 1000:.0f} ms; after it {after} answers, "
        f"{len(slow_after)} took 100 ms or more: {slow_after[:10]}"
    )
    console.print(table)
    console.print(f"health green {green_after:.2f} s after the thaw")
    console.print(f"orders placed during the pause: {len(orders)}, now: {dict(states)}")
    if not set(states) <= TERMINAL:
        console.print("[red]some orders did not settle[/red]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pause", type=float, default=10.0, help="seconds frozen")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--lead", type=float, default=1.0, help="seconds of load before")
    parser.add_argument(
        "--detection",
        type=float,
        default=None,
        help="seconds the watches take to know (default: from their settings)",
    )
    args = parser.parse_args()
    if args.detection is None:
        args.detection = _detection_s()
    with own_platform(
        console,
        "bench-outage-",
        env_overrides={
            "GATEWAY_SEARCH_RATE": "1000000r/s",
            "GATEWAY_SEARCH_BURST": "1000000",
            "STOREFRONT_LOG_LEVEL": "WARNING",
        },
    ) as (platform, endpoints):
        pids = (
            listening_pid(endpoints.redis_url),
            listening_pid(endpoints.elasticsearch_url),
        )
        asyncio.run(
            bench(args, endpoints.gateway_url, pids, platform.platform_env["AUTH_JWT_SIGNING_KEY"])
        )


if __name__ == "__main__":
    main()
