"""Reservations per second on one hot sku, through the internal API, against the raw ceiling.

Issue 4: 200 concurrent clients reserve 1 unit of the same sku through
``POST /internal/inventory/reserve`` (a running inventory service, e.g. from
``make run``); in the same run, the raw ceiling is a bare asyncpg loop doing the same
conditional ``UPDATE`` on the same row with the same concurrency. Prints the rates,
the ratios, p50/p95/p99, and checks that nothing was oversold.

A third row, ``statement``, runs the service's own hold statement (the repository's
SQL: reservation, line, stock and outbox event in one statement) in the same bare loop:
the most any service could get out of this database on this machine, since the issue
wants a reservation's rows and event written with its stock change.

    .venv/bin/python bench/bench_inventory_reserve.py --duration 10

The bench creates its own hot product (``BENCH-HOT-<n>``) directly in the database and
signs service tokens as orders, with orders' key from the runner
(``.stack/run/keys/service-token-orders.pem``): reserve accepts orders alone.
"""

import argparse
import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

from inventory_service import events, repository
from jwt_core_lib import ServiceTokenMinter, SigningKey, TokenIssuer

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    ok: int = 0
    refused: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def report(self, name: str, seconds: float) -> float:
        rate = self.ok / seconds
        q = statistics.quantiles(self.latencies, n=100) if len(self.latencies) > 100 else [0] * 99
        print(
            f"{name:<10} {rate:8,.0f} reservations/s  ok={self.ok} refused={self.refused} "
            f"errors={self.errors}  p50={q[49] * 1000:.1f} ms p95={q[94] * 1000:.1f} ms "
            f"p99={q[98] * 1000:.1f} ms"
        )
        return rate


async def _create_hot_sku(pool: asyncpg.Pool, sku: str, units: int) -> None:
    async with pool.acquire() as connection:
        product_id = uuid.uuid4()
        await connection.execute(
            "INSERT INTO product (id, sku, name, brand, category, price, currency) "
            "VALUES ($1, $2, 'Bench hot product', 'Bench', 'bench', 100, 'EUR')",
            product_id,
            sku,
        )
        await connection.execute(
            "INSERT INTO stock (sku, product_id, on_hand) VALUES ($1, $2, $3)",
            sku,
            product_id,
            units,
        )


async def _through_the_service(
    url: str, minter: ServiceTokenMinter, sku: str, clients: int, seconds: float
) -> Run:
    # aiohttp, not httpx: with 200 connections httpx's pool spent a whole core on its
    # own bookkeeping and capped the run near 120 requests/s whatever the server did.
    run = Run()
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base_url=url, connector=connector, timeout=timeout) as client:

        async def one_client() -> None:
            while time.perf_counter() < deadline:
                body = {"order_id": str(uuid.uuid4()), "items": [{"sku": sku, "qty": 1}]}
                headers = {"Authorization": f"Bearer {minter.token_for('inventory')}"}
                started = time.perf_counter()
                async with client.post(
                    "/internal/inventory/reserve", json=body, headers=headers
                ) as response:
                    await response.read()
                run.latencies.append(time.perf_counter() - started)
                if response.status == 200:
                    run.ok += 1
                elif response.status == 409:
                    run.refused += 1
                else:
                    run.errors += 1

        await asyncio.gather(*(one_client() for _ in range(clients)))
    return run


async def _raw_ceiling(pool: asyncpg.Pool, sku: str, clients: int, seconds: float) -> Run:
    run = Run()
    deadline = time.perf_counter() + seconds

    async def one_client() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with pool.acquire() as connection:
                status = await connection.execute(
                    "UPDATE stock SET reserved = reserved + 1, version = version + 1 "
                    "WHERE sku = $1 AND on_hand - reserved >= 1",
                    sku,
                )
            run.latencies.append(time.perf_counter() - started)
            if status == "UPDATE 1":
                run.ok += 1
            else:
                run.refused += 1

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return run


async def _statement_ceiling(pool: asyncpg.Pool, sku: str, clients: int, seconds: float) -> Run:
    # The repository's statement as the service sends it (asyncpg's numbered parameters),
    # with the parameters hold_reservation passes for a one-line order of 1 unit. Its
    # private constant on purpose: the row must measure exactly what the service runs.
    dialect = asyncpg_dialect.dialect()  # type: ignore[no-untyped-call]
    compiled = repository._HOLD_RESERVATION.compile(dialect=dialect)
    names = compiled.positiontup or []
    envelope = events.stock_changed().model_dump_json()
    run = Run()
    deadline = time.perf_counter() + seconds

    async def one_client() -> None:
        while time.perf_counter() < deadline:
            values = {
                "id": uuid.uuid4(),
                "order_id": uuid.uuid4(),
                "request_hash": "0" * 64,
                "ttl_s": 900,
                "skus": [sku],
                "qtys": [1],
                "event_ids": [uuid.uuid4()],
                "stream": events.STREAM,
                "event_type": "stock.changed",
                "envelope": envelope,
            }
            started = time.perf_counter()
            async with pool.acquire() as connection:
                row = await connection.fetchrow(compiled.string, *(values[n] for n in names))
            run.latencies.append(time.perf_counter() - started)
            if row is not None and row["expires_at"] is not None:
                run.ok += 1
            else:
                run.refused += 1

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return run


async def main(args: argparse.Namespace) -> None:
    key = SigningKey.from_pem((Path(args.keys_dir) / "service-token-orders.pem").read_text())
    minter = ServiceTokenMinter(
        issuer=TokenIssuer(signing_key=key, issuer="orders"), service_name="orders"
    )
    pool = await asyncpg.create_pool(args.database_url, min_size=4, max_size=args.pool_size)
    stamp = int(time.time())
    service_sku, statement_sku, raw_sku = (
        f"BENCH-HOT-{stamp}",
        f"BENCH-STMT-{stamp}",
        f"BENCH-RAW-{stamp}",
    )
    units = 10_000_000
    for sku in (service_sku, statement_sku, raw_sku):
        await _create_hot_sku(pool, sku, units)
    print(f"{args.clients} clients, {args.duration:.0f} s each, one hot sku")
    # Raw first, on a machine the other rows have not yet loaded; the statement row
    # last, since its events are relayed and indexed after it (the service wakes its
    # relay as it commits; this loop does not), which would slow the row after it.
    raw = await _raw_ceiling(pool, raw_sku, args.clients, args.duration)
    await asyncio.sleep(args.pause)
    service = await _through_the_service(
        args.inventory_url, minter, service_sku, args.clients, args.duration
    )
    await asyncio.sleep(args.pause)
    statement = await _statement_ceiling(pool, statement_sku, args.clients, args.duration)
    service_rate = service.report("service", args.duration)
    statement_rate = statement.report("statement", args.duration)
    raw_rate = raw.report("raw", args.duration)
    print(f"ratio: {service_rate / raw_rate:.0%} of the raw ceiling (target: at least 40%)")
    print(
        f"the hold statement alone reaches {statement_rate / raw_rate:.0%} of the raw "
        f"ceiling; the service reaches {service_rate / statement_rate:.0%} of the statement"
    )
    for name, sku, run in (
        ("service", service_sku, service),
        ("statement", statement_sku, statement),
    ):
        async with pool.acquire() as connection:
            stock = await connection.fetchrow(
                "SELECT on_hand, reserved FROM stock WHERE sku = $1", sku
            )
        assert stock is not None, f"the bench's stock row {sku} is gone"
        on_hand, reserved = stock["on_hand"], stock["reserved"]
        oversold = reserved > on_hand or reserved != run.ok
        print(
            f"oversell check ({name}): reserved={reserved} ok={run.ok} "
            f"-> {'FAIL' if oversold else 'ok'}"
        )
    await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inventory-url", default="http://127.0.0.1:8103")
    parser.add_argument(
        "--database-url", default="postgresql://storefront@127.0.0.1:5432/inventory"
    )
    parser.add_argument("--keys-dir", default=str(ROOT / ".stack" / "run" / "keys"))
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--pause", type=float, default=3.0, help="seconds between rows, for background work"
    )
    parser.add_argument("--pool-size", type=int, default=20, help="the service's pool size")
    asyncio.run(main(parser.parse_args()))
