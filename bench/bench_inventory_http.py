"""CPU and Python calls of a checkout's two inventory requests, through the app (issue 17).

``bench_inventory_settle.py`` measures the use cases alone; this runs what a checkout
asks of inventory over its HTTP path: ``POST /internal/inventory/reserve`` then
``/commit`` with orders' service token, in-process (``httpx.ASGITransport``, no
uvicorn, no socket) against the app ``create_app`` builds, on a real PostgreSQL and
Redis, background tasks (the outbox relay, the sweeper) off. The client's own work is
in the figures too (the same for any version of the service), so only differences
between versions measured in one run mean something.

Printed: CPU-ms per checkout (both requests; ``time.process_time``, this process only),
the median of the rounds and their range, and Python calls per checkout
(``sys.setprofile``). Older inventory code is measured with ``PYTHONPATH`` at an export
of its ``services/inventory/src`` (``git archive``). ``--profile N`` prints cProfile's
top N functions (by own time) of the measured checkouts instead.

    .venv/bin/python bench/bench_inventory_http.py --rounds 5 --operations 300
"""

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from benchlib import cpu_ms, insert_stocked_products, migrated_database, python_calls
from inventory_service.app import create_app
from inventory_service.settings import InventorySettings
from storefront_kit.db import create_engine
from storefront_stack import infra
from storefront_stack.keys import KeyRing, service_token_env
from storefront_stack.logins import bearer
from storefront_stack.processes import free_port
from storefront_stack.serving import in_process


@asynccontextmanager
async def inventory(database_url: str, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    keys = KeyRing(service="inventory", caller="orders", default_subject="user-1")
    os.environ.update(service_token_env(["inventory"]))  # the app's own key (tokens: ``keys``)
    settings = InventorySettings(
        database_url=database_url,
        redis_url=redis_url,
        background_tasks_enabled=False,
        log_level="WARNING",
    )
    app = create_app(settings)
    app.state.security = keys.security()
    async with in_process(app, "http://inventory") as client:
        client.headers.update(bearer(keys.service_token("orders")))
        yield client


async def bench(
    database_url: str, redis_url: str, *, rounds: int, operations: int, profiled: int, top: int
) -> None:
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        (sku,) = await insert_stocked_products(engine, 1, prefix="BENCH-HTTP")
    finally:
        await engine.dispose()
    async with inventory(database_url, redis_url) as client:

        async def checkout(order_id: uuid.UUID) -> None:
            reserved = await client.post(
                "/internal/inventory/reserve",
                json={"order_id": str(order_id), "items": [{"sku": sku, "qty": 1}]},
            )
            assert reserved.status_code == 200, reserved.text
            committed = await client.post(
                "/internal/inventory/commit", json={"order_id": str(order_id)}
            )
            assert committed.status_code == 200, committed.text
            assert committed.json()["status"] == "committed"

        await cpu_ms(checkout, [uuid.uuid4() for _ in range(50)])  # warm up
        if top:
            profile = cProfile.Profile()
            profile.enable()
            await cpu_ms(checkout, [uuid.uuid4() for _ in range(operations)])
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(top)
            return
        cpu = [
            await cpu_ms(checkout, [uuid.uuid4() for _ in range(operations)]) for _ in range(rounds)
        ]
        calls = await python_calls(checkout, [uuid.uuid4() for _ in range(profiled)])
    print(f"{rounds} rounds x {operations} checkouts (reserve + commit), in-process")
    print(f"{'Python calls':>12}  {'CPU-ms median':>13}  range")
    print(f"{calls:>12.0f}  {statistics.median(cpu):>13.3f}  {min(cpu):.3f}-{max(cpu):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a PostgreSQL server URL (postgresql://…)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--operations", type=int, default=300, help="checkouts per round")
    parser.add_argument("--profiled", type=int, default=50, help="checkouts counted")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile top N")
    args = parser.parse_args()
    with migrated_database(args.database_url, "inventory_service", "bench-http-") as (
        url,
        scratch,
    ):
        redis_server = infra.start_redis(scratch / "redis", free_port(), persistent=False)
        try:
            kwargs: dict[str, Any] = {
                "rounds": args.rounds,
                "operations": args.operations,
                "profiled": args.profiled,
                "top": args.profile,
            }
            asyncio.run(bench(url, redis_server.url, **kwargs))
        finally:
            redis_server.stop()


if __name__ == "__main__":
    main()
