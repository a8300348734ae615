"""Catalog search through nginx, side by side with its two ceilings, in one run.

Issue 5: a cached search through nginx should reach at least 50% of the rate of a
trivial JSON answer through the same nginx and service; an uncached search at least 70%
of the same query sent straight to Elasticsearch. The same load generator (one
``aiohttp.ClientSession`` per target, ``--clients`` concurrent loops) drives every
row for ``--duration`` seconds in all, taken in ``--rounds`` turns (rows alternate, so
none profits from running later on a warmer Elasticsearch) after an unrecorded 1 s
warm-up of each; each row prints its rate and p50/p95/p99.

Rows:

- ``trivial``: ``GET /api/v1/products/search/-`` through nginx, a 404 problem from the
  catalog's router: middleware, routing and a small JSON body, no Redis, no Elasticsearch;
- ``readiness``: ``GET /health/catalog`` through nginx (the catalog's ``/health/ready``,
  a Redis ping and an Elasticsearch cluster-health call);
- ``cached``: a handful of searches repeated (every answer from the Redis cache);
- ``uncached``: every request a different search (new words, page or sort), so each
  one misses the cache and reaches Elasticsearch;
- ``es direct``: the same kind of searches (the catalog's own request body, built by
  ``catalog_service.service.search.build_search``) posted to ``<alias>/_search``. Uncached and
  direct searches are drawn alternately from one list, so neither warms Elasticsearch's
  request cache for the other.

By default the bench starts its own platform (free ports, search rate limit raised) and
seeds ``--products`` products through the admin API; ``--gateway`` uses a running one
(``make run``) instead, with ``--elasticsearch`` and the runner's keys.

    .venv/bin/python bench/bench_search.py --duration 6 --rounds 3 --products 3000
"""

import argparse
import asyncio
import itertools
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from rich.console import Console
from rich.table import Table

from benchlib import own_platform
from catalog_service.schemas import SearchParams
from catalog_service.service.search import build_search
from catalog_service.settings import CatalogSettings
from jwt_core_lib import SigningKey, TokenIssuer
from storefront_seed.catalogue import generate_catalogue
from storefront_seed.products import load_products

ROOT = Path(__file__).resolve().parents[1]
console = Console()

WORDS = [
    "iphone", "galaxy", "pixel", "smartphone", "phone", "laptop", "notebook", "ultrabook",
    "macbook", "chromebook", "headphones", "earbuds", "speaker", "soundbar", "turntable", "tshirt",
    "hoodie", "jacket", "jeans", "sneakers", "cap", "lamp", "kettle", "vacuum",
    "blender", "chair", "desk", "novel", "cookbook", "guide", "handbook", "anthology",
    "atlas", "running", "shoes", "racket", "watch", "backpack", "ball", "yoga",
    "puzzle", "sony", "bose", "apple", "lenovo", "dell", "ikea", "black",
    "white", "red", "blue", "green", "grey", "silver", "gold", "navy",
]  # fmt: skip
SORTS = ("relevance", "price_asc", "price_desc", "newest")
CACHED: list[dict[str, Any]] = [
    {"q": "headphones"},
    {"q": "laptop", "sort": "price_asc"},
    {"category": "phones", "in_stock": "true"},
    {"q": "kettel"},
    {"brand": "apple", "min_price": 10_000, "max_price": 100_000},
]


@dataclass
class Row:
    name: str
    ok: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.ok / max(self.seconds, 1e-9)

    def quantiles(self) -> tuple[float, float, float]:
        if len(self.latencies) < 100:
            return (0.0, 0.0, 0.0)
        q = statistics.quantiles(self.latencies, n=100)
        return q[49] * 1000, q[94] * 1000, q[98] * 1000


@dataclass(frozen=True)
class Call:
    """One request a row sends (relative to its session's base URL)."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None


async def drive(
    row: Row,
    client: aiohttp.ClientSession,
    make_call: Callable[[], Call],
    *,
    expect: int,
    clients: int,
    seconds: float,
) -> None:
    """``clients`` loops sending ``make_call()`` for ``seconds``, counted into ``row``."""
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        while time.perf_counter() < deadline:
            call = make_call()
            started = time.perf_counter()
            try:
                async with client.request(
                    call.method, call.path, params=call.params, json=call.json
                ) as response:
                    await response.read()
            except (aiohttp.ClientError, TimeoutError):
                row.errors += 1
                continue
            row.latencies.append(time.perf_counter() - started)
            row.statuses[response.status] = row.statuses.get(response.status, 0) + 1
            if response.status == expect:
                row.ok += 1
            else:
                row.errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(clients)))
    row.seconds += time.perf_counter() - started


def _query(values: dict[str, Any]) -> dict[str, Any]:
    # aiohttp takes str/int/float query values only (httpx also took lists and bools).
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat[key] = str(value).lower() if isinstance(value, bool) else value
    return flat


def unique_searches(seed: int) -> Iterator[dict[str, Any]]:
    """An endless stream of searches that were never asked before in this run."""
    rng = random.Random(seed)
    for page in itertools.count(1):
        for first, second in itertools.product(WORDS, WORDS):
            yield {
                "q": f"{first} {second}",
                "sort": rng.choice(SORTS),
                "page": 1 + (page - 1) % 20,
                "size": 20,
            }


def admin_token(pem: str) -> str:
    issuer = TokenIssuer(signing_key=SigningKey.from_pem(pem), issuer="storefront-auth")
    return issuer.issue(
        subject="bench-search", audience="storefront", ttl=timedelta(minutes=30), roles=("admin",)
    )


async def seed(gateway: str, elasticsearch: str, alias: str, pem: str, count: int) -> int:
    """Load ``count`` products through the admin API; wait until the index holds them."""
    report = await load_products(
        gateway, admin_token(pem), generate_catalogue(count), total=count, show_progress=True
    )
    if report.failed:
        sku, status, body = report.failed[0]
        raise SystemExit(f"seeding failed for {len(report.failed)}, e.g. {sku}: {status} {body}")
    async with httpx.AsyncClient(base_url=elasticsearch, timeout=10) as es:
        deadline = time.monotonic() + 300
        with console.status("waiting for the catalog to index the products"):
            while True:
                response = await es.post(
                    f"/{alias}/_count", json={"query": {"term": {"active": True}}}
                )
                indexed = int(response.json().get("count", 0)) if response.is_success else 0
                if indexed >= count or time.monotonic() > deadline:
                    return indexed
                await asyncio.sleep(0.5)


async def bench(args: argparse.Namespace, gateway: str, elasticsearch: str, pem: str) -> None:
    settings = CatalogSettings()
    alias = settings.index_alias
    indexed = await seed(gateway, elasticsearch, alias, pem, args.products)
    console.print(f"{indexed} searchable products; {args.clients} clients, {args.duration} s/row")

    searches = unique_searches(args.seed)

    def through_nginx(path: str, params: Callable[[], dict[str, Any]] | None = None) -> Any:
        def make() -> Call:
            return Call("GET", path, params=_query(params()) if params else None)

        return make

    cached = itertools.cycle(CACHED)

    def es_call() -> Call:
        next(searches)  # the service's turn: never sent here
        values = next(searches)
        params = SearchParams.normalised(**values)
        return Call(
            "POST",
            f"/{alias}/_search",
            params={"request_cache": "true"},
            json=build_search(params, settings),
        )

    def uncached_params() -> dict[str, Any]:
        values = next(searches)
        next(searches)  # Elasticsearch's turn
        return values

    # aiohttp, not httpx: past a few dozen busy connections httpx's pool spends a core
    # on its own bookkeeping, and the load generator shares the machine's two cores.
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(
            base_url=gateway, connector=aiohttp.TCPConnector(limit=args.clients), timeout=timeout
        ) as gw,
        aiohttp.ClientSession(
            base_url=elasticsearch,
            connector=aiohttp.TCPConnector(limit=args.clients),
            timeout=timeout,
        ) as es,
    ):
        for params in CACHED:  # warm the cache
            async with gw.get("/api/v1/products/search", params=_query(params)) as response:
                response.raise_for_status()
        plan: list[tuple[str, aiohttp.ClientSession, Callable[[], Call], int]] = [
            ("trivial", gw, through_nginx("/api/v1/products/search/-"), 404),
            ("readiness", gw, through_nginx("/health/catalog"), 200),
            ("cached", gw, through_nginx("/api/v1/products/search", lambda: next(cached)), 200),
            ("uncached", gw, through_nginx("/api/v1/products/search", uncached_params), 200),
            ("es direct", es, es_call, 200),
        ]
        # Rows take turns, a slice each per round, after an unrecorded warm-up of each:
        # run one row after another and the later rows find Elasticsearch's JIT (and
        # the machine) warmer, which moved the ratios by more than any code change did.
        rows = [Row(name) for name, *_ in plan]
        warm_up = [Row(name) for name, *_ in plan]
        slice_s = args.duration / args.rounds
        for round_rows, seconds in [(warm_up, 1.0)] + [(rows, slice_s)] * args.rounds:
            for row, (name, client, make, expect) in zip(round_rows, plan, strict=True):
                with console.status(f"{name}…"):
                    await drive(
                        row, client, make, expect=expect, clients=args.clients, seconds=seconds
                    )

    by_name = {row.name: row for row in rows}
    table = Table(title="catalog search (requests/s, latency in ms)")
    for column in ("row", "req/s", "ok", "errors", "p50", "p95", "p99"):
        table.add_column(column, justify="left" if column == "row" else "right")
    for row in rows:
        p50, p95, p99 = row.quantiles()
        table.add_row(
            row.name,
            f"{row.rate:,.0f}",
            str(row.ok),
            str(row.errors) + (f" {row.statuses}" if row.errors else ""),
            f"{p50:.1f}",
            f"{p95:.1f}",
            f"{p99:.1f}",
        )
    console.print(table)
    for label, numerator, denominator, target in (
        ("cached / trivial", "cached", "trivial", 0.50),
        ("cached / readiness", "cached", "readiness", 0.50),
        ("uncached / es direct", "uncached", "es direct", 0.70),
    ):
        ratio = by_name[numerator].rate / max(by_name[denominator].rate, 1e-9)
        verdict = "[green]ok[/]" if ratio >= target else "[red]below target[/]"
        console.print(f"{label:<22} {ratio:6.0%}  (target ≥ {target:.0%}) {verdict}")


def run_own_platform(args: argparse.Namespace) -> None:
    with own_platform(
        console,
        "bench-search-",
        env_overrides={
            # The search limits per client address (the edge's and catalog's own)
            # would cap the bench itself.
            "GATEWAY_SEARCH_RATE": "1000000r/s",
            "GATEWAY_SEARCH_BURST": "1000000",
            "CATALOG_SEARCH_IP_RATE_LIMIT": "1000000000/minute",
            "STOREFRONT_LOG_LEVEL": "WARNING",
        },
    ) as (platform, endpoints):
        asyncio.run(
            bench(
                args,
                endpoints.gateway_url,
                endpoints.elasticsearch_url,
                platform.platform_env["AUTH_JWT_SIGNING_KEY"],
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gateway", help="a running platform's gateway (default: start one)")
    parser.add_argument("--elasticsearch", default="http://127.0.0.1:9200")
    parser.add_argument("--keys-dir", default=str(ROOT / ".stack" / "run" / "keys"))
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per row")
    parser.add_argument("--rounds", type=int, default=3, help="turns each row takes")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    if args.gateway:
        pem = (Path(args.keys_dir) / "auth-jwt.pem").read_text()
        asyncio.run(bench(args, args.gateway, args.elasticsearch, pem))
    else:
        run_own_platform(args)


if __name__ == "__main__":
    main()
