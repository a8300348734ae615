"""CPU and Python calls of one saga step transaction of orders (issue 17).

A checkout runs six step transactions in orders (the first action's start and five
outcomes); on a shared 2-core machine the platform bench (``bench_cost.py``) cannot
resolve a change of a few ms in one of them, so this runs **one step transaction in a
loop** against a real PostgreSQL, no HTTP: the outcome of ``capture_payment`` recorded
and ``create_shipment`` started (lock the order row, check the lease, the status change
to PAID with its event, ``payment.captured``, the two step rows, commit), each time on
another order.

Two variants, alternated in the same run so the machine's load hits both alike:

- ``orm``: the step transaction as it was before (issue 17, branch i17-core): the order
  row loaded through the ORM (``SELECT … FOR UPDATE`` into a ``CustomerOrder``), changed
  in place and written by the session's flush at commit;
- ``saga``: what the orchestrator runs now (``SagaOrchestrator._complete``) on the row
  as the step ran with it: one guarded statement, no transaction (session 15);
- ``saga, locked``: the same outcome written as when the row changed while the step
  ran (a cancel): the row read ``FOR UPDATE`` in a transaction, then one statement.

And a new checkout's start, the same way: ``insert+start`` is the request's insert
transaction followed by the saga's first step transaction (its first action recorded
``running``), as before; ``insert+begin`` is the insert transaction that records the
first action itself (``SagaOrchestrator.begin``), as now.

Printed per variant: CPU-ms per transaction (``time.process_time``, this process only:
PostgreSQL's own CPU is not in it), the median of the rounds and their range, and Python
calls per transaction (``sys.setprofile``, ``call`` events: the same on every run,
whatever the load). By default a PostgreSQL is started in a temporary directory (as the
tests do); ``--database-url`` uses a server that runs (a new database is created on it).
Older orders code can be measured the same way with ``PYTHONPATH`` at an export of its
``services/orders/src`` (``git archive``) from session 15 on (``_complete`` takes the
row since then).

    .venv/bin/python bench/bench_step_transaction.py --rounds 5 --transactions 300
"""

import argparse
import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from benchlib import cpu_ms, migrated_database, print_loop_table, python_calls
from orders_service import repository
from orders_service.domain.saga import OrderStatus, Step, StepStatus, next_action, status_after
from orders_service.models import CustomerOrder, SagaStep
from orders_service.repository import StepRecord
from orders_service.service.saga.orchestrator import SagaOrchestrator
from orders_service.service.saga.steps import STEPS, StepContext, StepOutcome
from orders_service.service.transitions import transition
from orders_service.settings import OrdersSettings
from storefront_kit.db import create_engine, create_sessionmaker, unit_of_work
from storefront_kit.ids import new_id
from storefront_stack.shop import UK_ADDRESS

OWNER = "bench-replica"
STEP = Step.CAPTURE_PAYMENT
NEXT = Step.CREATE_SHIPMENT
OUTCOME = StepOutcome(
    StepStatus.SUCCEEDED, {"payment_id": "pay_bench", "status": "captured", "amount": 500}
)

Transaction = Callable[[UUID], Awaitable[None]]


async def insert_orders(sessionmaker: async_sessionmaker[AsyncSession], count: int) -> list[UUID]:
    """``count`` RESERVED orders leased to :data:`OWNER`, ``capture_payment`` running."""
    ids = [new_id() for _ in range(count)]
    line = {"sku": "SKU-1", "qty": 1, "unit_price": 500, "currency": "EUR", "name": "Thing"}
    async with unit_of_work(sessionmaker) as session:
        await session.execute(
            insert(CustomerOrder),
            [
                {
                    "id": order_id,
                    "user_id": f"user-{i % 50}",
                    "status": OrderStatus.RESERVED.value,
                    "idempotency_key": uuid.uuid4().hex,
                    "request_hash": "0" * 64,
                    "items": [{"sku": "SKU-1", "qty": 1}],
                    "lines": [line],
                    "subtotal": 500,
                    "total": 500,
                    "currency": "EUR",
                    "shipping_address": UK_ADDRESS,
                    "payment_method": {"method": "card", "token": "tok_visa"},
                    "client_address": "127.0.0.1",
                    "payment_id": "pay_bench",
                    "lease_owner": OWNER,
                    "version": 2,
                }
                for i, order_id in enumerate(ids)
            ],
        )
        await session.execute(
            insert(SagaStep),
            [
                {
                    "id": new_id(),
                    "order_id": order_id,
                    "user_id": f"user-{i % 50}",
                    "step": step.value,
                    "kind": "action",
                    "status": status.value,
                    "attempts": 1,
                }
                for i, order_id in enumerate(ids)
                for step, status in (
                    (Step.SCREEN_FRAUD, StepStatus.SKIPPED),
                    (Step.RESERVE_INVENTORY, StepStatus.SUCCEEDED),
                    (Step.CHECK_FRAUD, StepStatus.SKIPPED),
                    (Step.AUTHORIZE_PAYMENT, StepStatus.SUCCEEDED),
                    (STEP, StepStatus.RUNNING),
                )
            ],
        )
    return ids


def orm_transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> Transaction:
    """The step transaction through the ORM, as the orchestrator ran it before."""

    async def run(order_id: UUID) -> None:
        async with unit_of_work(sessionmaker) as session:
            order = await repository.get_order(session, order_id, for_update=True)
            if order is None or order.lease_owner != OWNER:
                raise RuntimeError("lease lost")
            previous, target = order.status, status_after(STEP)
            order.status = target
            STEPS[STEP].apply(session, cast(Any, order), OUTCOME)
            await transition(session, order, target, previous=previous)
            records = [
                StepRecord(STEP, OUTCOME.status, result=OUTCOME.result),
                StepRecord(NEXT, StepStatus.RUNNING, new_attempt=True),
            ]
            await repository.record_steps(session, order, records)

    return run


def saga_transaction(
    orchestrator: SagaOrchestrator, rows: dict[UUID, repository.OrderRow], *, locked: bool
) -> Transaction:
    """The step transaction the orchestrator runs, on the row the step ran with (as the
    saga holds it), or (``locked``) on the row read again under its lock."""

    async def run(order_id: UUID) -> None:
        statuses = {
            Step.SCREEN_FRAUD: StepStatus.SKIPPED,
            Step.RESERVE_INVENTORY: StepStatus.SUCCEEDED,
            Step.CHECK_FRAUD: StepStatus.SKIPPED,
            Step.AUTHORIZE_PAYMENT: StepStatus.SUCCEEDED,
            STEP: StepStatus.RUNNING,
        }
        known = rows[order_id]
        if locked:  # nothing to compare with: the locked path
            known = dataclasses.replace(known, stored=())
        _, following = await orchestrator._complete(known, STEP, OUTCOME, statuses)
        if following != NEXT:
            raise RuntimeError(f"unexpected next step {following}")

    return run


def checkout_start(orchestrator: SagaOrchestrator, *, begin: bool) -> Transaction:
    """A new order inserted (as ``POST /orders`` does) and its first action started:
    in a step transaction of its own (before) or in the insert's (``begin``, now)."""

    async def run(order_id: UUID) -> None:
        sessionmaker = orchestrator._sessionmaker
        async with unit_of_work(sessionmaker) as session:
            order = await repository.insert_order(
                session,
                user_id="user-1",
                idempotency_key=order_id.hex,
                request_hash="0" * 64,
                items=[{"sku": "SKU-1", "qty": 1}],
                shipping_address=UK_ADDRESS,
                payment_method={"method": "card", "token": "tok_visa"},
                client_address="127.0.0.1",
                lease_owner=OWNER,
                lease_ttl_s=30,
                steps=orchestrator.first_steps().records if begin else (),
            )
            assert order is not None
        if not begin:
            first = next_action({})
            assert first is not None
            await orchestrator._start_action(order.id, first, {})

    return run


async def verify(sessionmaker: async_sessionmaker[AsyncSession], ids: list[UUID]) -> None:
    """Every order the loop went through is PAID, one version up, with its event."""
    async with sessionmaker() as session:
        for order_id in ids[:5]:
            order = await repository.get_order(session, order_id)
            assert order is not None
            got = (order.status, order.version, order.payment_id)
            assert got == ("PAID", 3, "pay_bench"), got
            steps = await repository.steps_of(session, order_id)
            assert steps[STEP].status == StepStatus.SUCCEEDED
            assert steps[NEXT].status == StepStatus.RUNNING


async def bench(database_url: str, rounds: int, transactions: int, profiled: int) -> None:
    engine = create_engine(database_url, pool_size=2, max_overflow=0)
    sessionmaker = create_sessionmaker(engine)
    settings = OrdersSettings(database_url=database_url)
    orchestrator = SagaOrchestrator(
        sessionmaker=sessionmaker,
        # no provider is called, no alert published; no fraud rule (screening skipped)
        steps=cast(StepContext, SimpleNamespace(fraud=SimpleNamespace(rules_for=lambda _: ()))),
        redis=cast(Redis, None),
        settings=settings,
        owner=OWNER,
    )
    rows: dict[UUID, repository.OrderRow] = {}
    variants: dict[str, Transaction] = {
        "orm": orm_transaction(sessionmaker),
        "saga": saga_transaction(orchestrator, rows, locked=False),
        "saga, locked": saga_transaction(orchestrator, rows, locked=True),
        "insert+start": checkout_start(orchestrator, begin=False),
        "insert+begin": checkout_start(orchestrator, begin=True),
    }
    steps = ("orm", "saga", "saga, locked")
    per_variant = (rounds * transactions) + profiled + 20
    pools = {
        name: await insert_orders(sessionmaker, per_variant)
        if name in steps
        else [new_id() for _ in range(per_variant)]  # the ids of the orders' keys
        for name in variants
    }
    async with sessionmaker() as session:  # the rows the saga holds (not measured)
        for order_id in pools["saga"] + pools["saga, locked"]:
            row = await repository.read_order_row(session, order_id)
            assert row is not None
            rows[order_id] = row
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    calls: dict[str, float] = {}
    try:
        for name, transaction in variants.items():  # warm up: caches, prepared statements
            warm, pools[name] = pools[name][:20], pools[name][20:]
            await cpu_ms(transaction, warm)
        for _ in range(rounds):
            for name, transaction in variants.items():
                batch, pools[name] = pools[name][:transactions], pools[name][transactions:]
                cpu[name].append(await cpu_ms(transaction, batch))
                if name in steps:
                    await verify(sessionmaker, batch)
        for name, transaction in variants.items():
            calls[name] = await python_calls(transaction, pools[name][:profiled])
    finally:
        await engine.dispose()
    print(f"{rounds} rounds x {transactions} step transactions per variant, alternating")
    print_loop_table("variant", variants, cpu, calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a PostgreSQL server URL (postgresql://…)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--transactions", type=int, default=300, help="per variant and round")
    parser.add_argument("--profiled", type=int, default=50, help="transactions counted")
    args = parser.parse_args()
    with migrated_database(args.database_url, "orders_service", "bench-step-") as (url, _):
        asyncio.run(bench(url, args.rounds, args.transactions, args.profiled))


if __name__ == "__main__":
    main()
