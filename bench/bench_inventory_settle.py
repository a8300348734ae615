"""CPU and Python calls of inventory's reserve, commit and release (issue 17).

A checkout calls inventory twice (``reserve``, then ``commit``; a failed one
``release`` instead). On a shared 2-core machine the platform bench (``bench_cost.py``)
cannot resolve a change of a fraction of a millisecond in one of them, so this runs the
**use cases in a loop** against a real PostgreSQL, no HTTP: each operation in its own
session and transaction (``unit_of_work``, as ``request_session`` runs a request), each
time on another order.

Settle variants, alternated in the same run so the machine's load hits both alike:

- ``orm``: commit/release as they were before (issue 17, branch i17-inv): the
  reservation row locked and loaded through the ORM, its lines loaded through the ORM,
  one stock statement (with its event) per line, one status ``UPDATE``, in a
  transaction (``BEGIN`` … ``COMMIT``); kept here, copied, for the comparison;
- ``service``: what ``inventory_service.service.reservations`` runs now.

``reserve`` is measured once per round (the same code for both).

Printed per operation: CPU-ms per operation (``time.process_time``, this process only:
PostgreSQL's own CPU is not in it), the median of the rounds and their range, and Python
calls per operation (``sys.setprofile``, ``call`` events: the same on every run,
whatever the load). By default a PostgreSQL is started in a temporary directory (as the
tests do); ``--database-url`` uses a server that runs (a new database is created on it).
Older inventory code can be measured with ``PYTHONPATH`` at an export of its
``services/inventory/src`` (``git archive``): its ``service`` rows are then that code's.

    .venv/bin/python bench/bench_inventory_settle.py --rounds 5 --operations 300

``--linger 0.01 0.025`` measures the outbox relay instead: a Redis is started too, a
relay (``storefront_kit.events.OutboxRelay``, woken by the commits as in the service)
runs with each linger in turn, and ``--clients`` clients pace checkouts (reserve, a
pause as the saga takes, commit, a pause) at ``--rate`` checkouts/s in all for
``--seconds``; printed per linger: CPU-ms of this process per checkout (the use cases,
the same for each linger, plus the relay), relay rounds per checkout and events per
round. Alternated ``--rounds`` times; a negative linger runs no relay (the use cases'
own CPU, for reference).

``--relay-rounds`` measures one relay round publishing one event (what one commit's
wake-up costs): the former round (``OrmRelay``, copied here: ORM objects and a flush)
against the kit's, alternated, CPU-ms and Python calls per round (staging not counted).

    .venv/bin/python bench/bench_inventory_settle.py --relay-rounds --operations 300

    .venv/bin/python bench/bench_inventory_settle.py --linger 0.01 0.025 --rate 16
"""

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from benchlib import cpu_ms, migrated_database, print_loop_table, python_calls
from inventory_service import events, repository
from inventory_service.domain.reservations import (
    COMMIT,
    COMMITTED,
    RELEASE,
    RELEASED,
    LineRequest,
    Transition,
)
from inventory_service.errors import ReservationNotFound
from inventory_service.models import OutboxEvent, Reservation
from inventory_service.schemas import ReservationLineOut, ReservationOut
from inventory_service.service import reservations
from storefront_kit.db import create_engine, create_sessionmaker, unit_of_work
from storefront_kit.events import EventEnvelope, OutboxRelay
from storefront_kit.ids import new_id
from storefront_stack import infra
from storefront_stack.processes import free_port

Operation = Callable[[UUID], Awaitable[None]]


async def insert_products(sessionmaker: async_sessionmaker[AsyncSession], count: int) -> list[str]:
    """``count`` products with more stock than any run sells."""
    skus = [f"BENCH-SETTLE-{new_id().hex[-12:].upper()}" for _ in range(count)]
    async with unit_of_work(sessionmaker) as session:
        for sku in skus:
            product_id = new_id()
            await session.execute(
                text(
                    "INSERT INTO product (id, sku, name, brand, category, price, currency)"
                    " VALUES (:id, :sku, 'Bench product', 'Bench', 'bench', 1250, 'EUR')"
                ),
                {"id": product_id, "sku": sku},
            )
            await session.execute(
                text("INSERT INTO stock (sku, product_id, on_hand) VALUES (:sku, :id, :n)"),
                {"sku": sku, "id": product_id, "n": 1_000_000_000},
            )
    return skus


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


async def _orm_settle(
    session: AsyncSession,
    order_id: UUID,
    *,
    transition: Callable[[str], Transition],
    change: Any,
    status: str,
) -> ReservationOut:
    """``service.reservations._settle`` as it was before (ORM loads, a statement per line)."""
    statement = select(Reservation).where(Reservation.order_id == order_id).with_for_update()
    result = await session.scalars(statement, execution_options={"populate_existing": True})
    reservation = result.one_or_none()
    if reservation is None:
        raise ReservationNotFound(f"No reservation for order {order_id}.")
    lines = await repository.reservation_lines(session, [reservation.id])
    if transition(reservation.status) == "apply":
        for line in lines:
            await repository.change_held_stock(
                session,
                change,
                sku=line.sku,
                qty=line.qty,
                stream=events.STREAM,
                event=events.stock_changed(),
            )
        await repository.set_reservation_status(
            session, reservation_ids=[reservation.id], status=status
        )
        reservation.status = status
    return ReservationOut(
        order_id=reservation.order_id,
        status=reservation.status,
        expires_at=reservation.expires_at,
        lines=[
            ReservationLineOut(
                sku=line.sku,
                qty=line.qty,
                unit_price=line.unit_price,
                currency=line.currency,
                name=line.name,
            )
            for line in lines
        ],
        total=reservation.total,
        currency=reservation.currency,
    )


def settle_operation(
    sessionmaker: async_sessionmaker[AsyncSession], variant: str, action: str
) -> Operation:
    expected = {"commit": COMMITTED, "release": RELEASED}[action]

    async def run(order_id: UUID) -> None:
        async with unit_of_work(sessionmaker) as session:
            if variant == "orm":
                transition = (COMMIT if action == "commit" else RELEASE).transition
                out = await _orm_settle(
                    session, order_id, transition=transition, change=action, status=expected
                )
            elif action == "commit":
                out = await reservations.commit(session, order_id=order_id)
            else:
                out = await reservations.release(session, order_id=order_id)
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
            assert (row.on_hand, row.reserved) == (1_000_000_000 - sold, 0), row
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
    skus = await insert_products(sessionmaker, lines)
    reserve = reserve_operation(sessionmaker, skus)
    settles: dict[str, Operation] = {
        f"{action} {variant}": settle_operation(sessionmaker, variant, action)
        for action in ("commit", "release")
        for variant in ("orm", "service")
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
        await cpu_ms(settles["release service"], ids)
        for name, operation in settles.items():
            ids = await reserved(profiled, measure=False)
            calls[name] = await python_calls(operation, ids)
            sold += profiled * name.startswith("commit")
        await verify(sessionmaker, skus, sold)
    finally:
        await engine.dispose()
    print(f"{rounds} rounds x {operations} operations per variant, alternating, {lines} line(s)")
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
    commit = settle_operation(sessionmaker, "service", "commit")
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
    skus = await insert_products(create_sessionmaker(engine), 1)
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


class OrmRelay(OutboxRelay):
    """The kit's relay round as it was before (issue 17, branch i17-inv), copied: the
    batch loaded as ORM objects, marked published by the session's flush."""

    async def relay_once(self) -> int:
        model: Any = OutboxEvent
        async with self._sessionmaker() as session, session.begin():
            rows = (
                await session.scalars(
                    select(model)
                    .where(model.published_at.is_(None))
                    .order_by(model.created_at, model.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            envelopes = [EventEnvelope.model_validate(row.envelope) for row in rows]
            async with self._redis.pipeline(transaction=False) as pipe:
                for row, envelope in zip(rows, envelopes, strict=True):
                    pipe.xadd(
                        row.stream,
                        envelope.to_stream_fields(),  # type: ignore[arg-type]
                        maxlen=self._stream_maxlen,
                        approximate=True,
                    )
                await pipe.execute()
            now = datetime.now(UTC)
            for row in rows:
                row.published_at = now
            return len(rows)


async def relay_round_bench(
    database_url: str, redis_url: str, *, rounds: int, operations: int, profiled: int
) -> None:
    """CPU-ms and Python calls per relay round publishing one event (as a wake-up by one
    checkout's commit does), the former round against the kit's, alternated."""
    engine = create_engine(database_url, pool_size=2, max_overflow=0)
    sessionmaker = create_sessionmaker(engine)
    redis = Redis.from_url(redis_url)
    reserve = reserve_operation(sessionmaker, await insert_products(sessionmaker, 1))
    relays: dict[str, OutboxRelay] = {
        name: kind(sessionmaker=sessionmaker, redis=redis, model=OutboxEvent)
        for name, kind in (("orm", OrmRelay), ("kit", OutboxRelay))
    }
    cpu: dict[str, list[float]] = {name: [] for name in relays}
    calls: dict[str, float] = {}

    async def one_event_rounds(relay: OutboxRelay, count: int) -> float:
        spent = 0.0
        for _ in range(count):
            await reserve(new_id())  # stages one stock.changed
            began = time.process_time()
            published = await relay.relay_once()
            spent += time.process_time() - began
            assert published == 1, published
        return spent * 1000 / count

    try:
        for relay in relays.values():
            await relay.relay_once()  # any backlog
            await one_event_rounds(relay, 20)  # warm up
        for _ in range(rounds):
            for name, relay in relays.items():
                cpu[name].append(await one_event_rounds(relay, operations))
        for name, relay in relays.items():
            counted = 0

            def profile(frame: FrameType, event: str, arg: Any) -> None:
                nonlocal counted
                if event == "call":
                    counted += 1

            for _ in range(profiled):
                await reserve(new_id())
            relay._batch_size = 1
            sys.setprofile(profile)
            try:
                for _ in range(profiled):
                    await relay.relay_once()
            finally:
                sys.setprofile(None)
            calls[name] = counted / profiled
    finally:
        await redis.aclose()
        await engine.dispose()
    print(f"{rounds} rounds x {operations} relay rounds of one event per variant, alternating")
    print_loop_table("relay round", relays, cpu, calls, digits=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a PostgreSQL server URL (postgresql://…)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--operations", type=int, default=300, help="per variant and round")
    parser.add_argument("--profiled", type=int, default=50, help="operations counted")
    parser.add_argument("--lines", type=int, default=1, help="skus per reservation")
    parser.add_argument("--linger", type=float, nargs="+", help="relay lingers (s) to compare")
    parser.add_argument("--rate", type=float, default=16.0, help="checkouts/s (with --linger)")
    parser.add_argument("--clients", type=int, default=4, help="(with --linger)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per run (with --linger)")
    parser.add_argument(
        "--relay-rounds", action="store_true", help="CPU per relay round, before and now"
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
