"""CPU and Python calls of inventory's reserve, commit and release (issue 17).

A checkout calls inventory twice (``reserve``, then ``commit``; a failed one
``release`` instead). On a shared 2-core machine the platform bench (``bench_cost.py``)
cannot resolve a change of a fraction of a millisecond in one of them, so this runs the
**use cases in a loop** against a real PostgreSQL, no HTTP: each operation in its own
session and transaction (``unit_of_work``, as ``request_session`` runs a request), each
time on another order: ``reserve``, ``commit`` and ``release`` as
``inventory_service.service.reservations`` runs them, alternated in the same run so the
machine's load hits them alike. (The former ORM settlement, measured beside them in
issue 17, is recorded in docs/benchmarks.md.)

Printed per operation: CPU-ms per operation (``time.process_time``, this process only:
PostgreSQL's own CPU is not in it), the median of the rounds and their range, and Python
calls per operation (``sys.setprofile``, ``call`` events: the same on every run,
whatever the load). By default a PostgreSQL is started in a temporary directory (as the
tests do); ``--database-url`` uses a server that runs (a new database is created on it).
Older inventory code can be measured with ``PYTHONPATH`` at an export of its
``services/inventory/src`` (``git archive``): its rows are then that code's.

    .venv/bin/python bench/bench_inventory_settle.py --rounds 5 --operations 300

``--linger 0.01 0.025`` measures the outbox relay instead: a Redis is started too, a
relay (``storefront_kit.events.OutboxRelay``, woken by the commits as in the service)
runs with each linger in turn, and ``--clients`` clients pace checkouts (reserve, a
pause as the saga takes, commit, a pause) at ``--rate`` checkouts/s in all for
``--seconds``; printed per linger: CPU-ms of this process per checkout (the use cases,
the same for each linger, plus the relay), relay rounds per checkout and events per
round. Alternated ``--rounds`` times; a negative linger runs no relay (the use cases'
own CPU, for reference).

``--relay-rounds`` measures one relay round of the kit's ``OutboxRelay`` publishing one
event (what one commit's wake-up costs): CPU-ms and Python calls per round (staging not
counted). An older kit is measured the same way, ``PYTHONPATH`` at an export of its
``libs/storefront_kit/src``.

    .venv/bin/python bench/bench_inventory_settle.py --relay-rounds --operations 300

    .venv/bin/python bench/bench_inventory_settle.py --linger 0.01 0.025 --rate 16
"""

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from benchlib import (
    STOCK_ON_HAND,
    cpu_ms,
    insert_stocked_products,
    migrated_database,
    print_loop_table,
    python_calls,
)
from inventory_service.domain.reservations import COMMITTED, RELEASED, LineRequest
from inventory_service.models import OutboxEvent
from inventory_service.service import reservations
from storefront_kit.db import create_engine, create_sessionmaker, unit_of_work
from storefront_kit.events import OutboxRelay
from storefront_kit.ids import new_id
from storefront_stack import infra
from storefront_stack.processes import free_port

Operation = Callable[[UUID], Awaitable[None]]


def reserve_operation(sessionmaker: async_sessionmaker[AsyncSession], skus: list[str]) -> Operation:
    lines = [LineRequest(sku=sku, qty=1) for sku in skus]

    async def run(order_id: UUID) -> None:
        async with unit_of_work(sessionmaker) as session:
            result = await reservations.reserve(
                session,
                order_id=order_id,
                lines=lines,
                ttl_s=None,
                default_ttl_s=900,
                max_ttl_s=3600,
                max_lines=100,
            )
        assert result.created

    return run


def settle_operation(sessionmaker: async_sessionmaker[AsyncSession], action: str) -> Operation:
    settle, expected = {
        "commit": (reservations.commit, COMMITTED),
        "release": (reservations.release, RELEASED),
    }[action]

    async def run(order_id: UUID) -> None:
        async with unit_of_work(sessionmaker) as session:
            out = await settle(session, order_id=order_id)
        assert out.status == expected, out.status

    return run


async def verify(
    sessionmaker: async_sessionmaker[AsyncSession], skus: list[str], sold: int
) -> None:
    """Nothing is left held, each sku sold exactly the committed units, one event per change."""
    async with sessionmaker() as session:
        for sku in skus:
            row = (
                await session.execute(
                    text("SELECT on_hand, reserved, version FROM stock WHERE sku = :sku"),
                    {"sku": sku},
                )
            ).one()
            assert (row.on_hand, row.reserved) == (STOCK_ON_HAND - sold, 0), row
            staged = await session.scalar(
                text(
                    "SELECT count(*) FROM outbox_event WHERE event_type = 'stock.changed'"
                    " AND envelope->'data'->>'sku' = :sku"
                ),
                {"sku": sku},
            )
            assert staged == row.version - 1, (staged, row.version)


async def bench(database_url: str, rounds: int, operations: int, profiled: int, lines: int) -> None:
    engine = create_engine(database_url, pool_size=2, max_overflow=0)
    sessionmaker = create_sessionmaker(engine)
    skus = await insert_stocked_products(engine, lines, prefix="BENCH-SETTLE")
    reserve = reserve_operation(sessionmaker, skus)
    settles: dict[str, Operation] = {
        action: settle_operation(sessionmaker, action) for action in ("commit", "release")
    }
    cpu: dict[str, list[float]] = {name: [] for name in ("reserve", *settles)}
    calls: dict[str, float] = {}
    sold = 0

    async def reserved(count: int, *, measure: bool) -> list[UUID]:
        ids = [new_id() for _ in range(count)]
        spent = await cpu_ms(reserve, ids)
        if measure:
            cpu["reserve"].append(spent)
        return ids

    try:
        for name, operation in settles.items():  # warm up: caches, prepared statements
            await cpu_ms(operation, await reserved(20, measure=False))
            sold += 20 * name.startswith("commit")
        for _ in range(rounds):
            for name, operation in settles.items():
                ids = await reserved(operations, measure=True)
                cpu[name].append(await cpu_ms(operation, ids))
                sold += operations * name.startswith("commit")
            await verify(sessionmaker, skus, sold)
        calls["reserve"] = await python_calls(reserve, ids := [new_id() for _ in range(profiled)])
        await cpu_ms(settles["release"], ids)
        for name, operation in settles.items():
            ids = await reserved(profiled, measure=False)
            calls[name] = await python_calls(operation, ids)
            sold += profiled * name.startswith("commit")
        await verify(sessionmaker, skus, sold)
    finally:
        await engine.dispose()
    print(f"{rounds} rounds x {operations} operations each, alternating, {lines} line(s)")
    print_loop_table("operation", cpu, cpu, calls, digits=3)


async def paced_checkouts(
    sessionmaker: async_sessionmaker[AsyncSession],
    skus: list[str],
    *,
    rate: float,
    clients: int,
    seconds: float,
    seed: int,
) -> int:
    """Checkouts (reserve, pause, commit, pause) at about ``rate`` per second in all."""
    reserve = reserve_operation(sessionmaker, skus)
    commit = settle_operation(sessionmaker, "commit")
    pace = random.Random(seed)  # timing jitter, not security
    period = clients / rate
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    done = 0

    async def client() -> None:
        nonlocal done
        await asyncio.sleep(pace.uniform(0, period))
        while loop.time() < deadline:
            order_id = new_id()
            await reserve(order_id)
            await asyncio.sleep(pace.uniform(0.2, 0.8) * period)
            await commit(order_id)
            done += 1
            await asyncio.sleep(pace.uniform(0.2, 0.8) * period)

    await asyncio.gather(*(client() for _ in range(clients)))
    return done


async def relay_bench(
    database_url: str,
    redis_url: str,
    lingers: list[float],
    *,
    rounds: int,
    rate: float,
    clients: int,
    seconds: float,
) -> None:
    engine = create_engine(database_url, pool_size=clients + 2, max_overflow=0)
    redis = Redis.from_url(redis_url)
    skus = await insert_stocked_products(engine, 1, prefix="BENCH-SETTLE")
    cpu: dict[float, list[float]] = {linger: [] for linger in lingers}
    rounds_per: dict[float, list[float]] = {linger: [] for linger in lingers}
    batch: dict[float, list[float]] = {linger: [] for linger in lingers}
    empty: dict[float, list[float]] = {linger: [] for linger in lingers}
    try:
        for round_ in range(rounds):
            for linger in lingers:
                sessionmaker = create_sessionmaker(engine)  # a relay of its own wakes
                if linger < 0:  # no relay: the use cases' own CPU, for reference
                    began = time.process_time()
                    done = await paced_checkouts(
                        sessionmaker, skus, rate=rate, clients=clients, seconds=seconds, seed=round_
                    )
                    cpu[linger].append((time.process_time() - began) * 1000 / done)
                    async with unit_of_work(sessionmaker) as session:  # no backlog for the next
                        await session.execute(
                            text(
                                "UPDATE outbox_event SET published_at = now()"
                                " WHERE published_at IS NULL"
                            )
                        )
                    continue
                relay = OutboxRelay(
                    sessionmaker=sessionmaker,
                    redis=redis,
                    model=OutboxEvent,
                    poll_interval_s=0.5,
                    notify_linger_s=linger,
                )
                relayed = {"rounds": 0, "events": 0, "expected": -1, "calls": 0}
                drained = asyncio.Event()
                relay_once = relay.relay_once

                async def counted(
                    relay_once: Callable[[], Awaitable[int]] = relay_once,
                    relayed: dict[str, int] = relayed,
                    drained: asyncio.Event = drained,
                ) -> int:
                    published = await relay_once()
                    relayed["calls"] += 1
                    relayed["rounds"] += published > 0
                    relayed["events"] += published
                    if relayed["events"] == relayed["expected"]:
                        drained.set()
                    return published

                relay.relay_once = counted  # type: ignore[method-assign]
                stop = asyncio.Event()
                task = asyncio.create_task(relay.run(stop))
                await asyncio.sleep(0.2)  # its first (empty) round
                relayed.update(rounds=0, events=0, calls=0)
                began = time.process_time()
                done = await paced_checkouts(
                    sessionmaker, skus, rate=rate, clients=clients, seconds=seconds, seed=round_
                )
                relayed["expected"] = 2 * done  # every event of the run published
                if relayed["events"] < relayed["expected"]:
                    await drained.wait()
                spent = time.process_time() - began
                stop.set()
                relay.notify()
                await task
                cpu[linger].append(spent * 1000 / done)
                rounds_per[linger].append(relayed["rounds"] / done)
                batch[linger].append(relayed["events"] / max(relayed["rounds"], 1))
                empty[linger].append((relayed["calls"] - relayed["rounds"]) / done)
    finally:
        await redis.aclose()
        await engine.dispose()
    print(
        f"{rounds} rounds x {seconds:.0f} s per linger, alternating, {clients} clients, "
        f"{rate:g} checkouts/s"
    )
    print(
        f"{'linger s':<9} {'CPU-ms/checkout median':>23}  range        relay rounds/checkout"
        f"  events/round  empty rounds/checkout"
    )
    for linger in lingers:
        if linger < 0:
            print(
                f"{'no relay':<9} {statistics.median(cpu[linger]):>23.3f}  "
                f"{min(cpu[linger]):.3f}-{max(cpu[linger]):.3f}"
            )
            continue
        print(
            f"{linger:<9g} {statistics.median(cpu[linger]):>23.3f}  "
            f"{min(cpu[linger]):.3f}-{max(cpu[linger]):.3f}  "
            f"{statistics.median(rounds_per[linger]):>20.2f}  "
            f"{statistics.median(batch[linger]):>12.2f}  "
            f"{statistics.median(empty[linger]):>21.2f}"
        )


async def relay_round_bench(
    database_url: str, redis_url: str, *, rounds: int, operations: int, profiled: int
) -> None:
    """CPU-ms and Python calls per relay round publishing one event (as a wake-up by one
    checkout's commit does)."""
    engine = create_engine(database_url, pool_size=2, max_overflow=0)
    sessionmaker = create_sessionmaker(engine)
    redis = Redis.from_url(redis_url)
    skus = await insert_stocked_products(engine, 1, prefix="BENCH-SETTLE")
    reserve = reserve_operation(sessionmaker, skus)
    relay = OutboxRelay(sessionmaker=sessionmaker, redis=redis, model=OutboxEvent)
    cpu: list[float] = []

    async def one_event_rounds(count: int) -> float:
        spent = 0.0
        for _ in range(count):
            await reserve(new_id())  # stages one stock.changed
            began = time.process_time()
            published = await relay.relay_once()
            spent += time.process_time() - began
            assert published == 1, published
        return spent * 1000 / count

    try:
        await relay.relay_once()  # any backlog
        await one_event_rounds(20)  # warm up
        for _ in range(rounds):
            cpu.append(await one_event_rounds(operations))
        for _ in range(profiled):
            await reserve(new_id())
        relay._batch_size = 1
        calls = await python_calls(lambda _: relay.relay_once(), range(profiled))
    finally:
        await redis.aclose()
        await engine.dispose()
    print(f"{rounds} rounds x {operations} relay rounds of one event")
    print_loop_table("relay round", ["kit"], {"kit": cpu}, {"kit": calls}, digits=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a PostgreSQL server URL (postgresql://…)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--operations", type=int, default=300, help="per operation and round")
    parser.add_argument("--profiled", type=int, default=50, help="operations counted")
    parser.add_argument("--lines", type=int, default=1, help="skus per reservation")
    parser.add_argument("--linger", type=float, nargs="+", help="relay lingers (s) to compare")
    parser.add_argument("--rate", type=float, default=16.0, help="checkouts/s (with --linger)")
    parser.add_argument("--clients", type=int, default=4, help="(with --linger)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per run (with --linger)")
    parser.add_argument(
        "--relay-rounds", action="store_true", help="CPU and Python calls per relay round"
    )
    args = parser.parse_args()
    redis_server = None
    with migrated_database(args.database_url, "inventory_service", "bench-settle-") as (
        url,
        scratch,
    ):
        try:
            if args.linger or args.relay_rounds:
                redis_server = infra.start_redis(scratch / "redis", free_port(), persistent=False)
            if args.relay_rounds:
                assert redis_server is not None
                asyncio.run(
                    relay_round_bench(
                        url,
                        redis_server.url,
                        rounds=args.rounds,
                        operations=args.operations,
                        profiled=args.profiled,
                    )
                )
            elif args.linger:
                assert redis_server is not None
                asyncio.run(
                    relay_bench(
                        url,
                        redis_server.url,
                        args.linger,
                        rounds=args.rounds,
                        rate=args.rate,
                        clients=args.clients,
                        seconds=args.seconds,
                    )
                )
            else:
                asyncio.run(bench(url, args.rounds, args.operations, args.profiled, args.lines))
        finally:
            if redis_server is not None:
                redis_server.stop()


if __name__ == "__main__":
    main()
