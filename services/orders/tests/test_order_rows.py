"""The saga's order row without the ORM, and a checkout's first step in its insert.

A step transaction reads the order ``FOR UPDATE`` into a plain ``OrderRow`` and writes
back only the columns it changed (issue 17); a new checkout's first action is recorded
``running`` by the transaction that inserted the order.
"""

import dataclasses
import time
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from orders_service import repository
from orders_service.domain.saga import Step, StepStatus
from orders_service.models import CustomerOrder, OutboxEvent
from orders_service.repository import StepRecord
from orders_service.service.saga.orchestrator import Begun
from orders_service.service.saga.runner import SagaRunner
from storefront_kit.db import unit_of_work
from storefront_stack.shop import UK_ADDRESS

Orders = Any  # the `orders` fixture of conftest.py

# The orders below that no saga runs are settled (CONFIRMED): the app's recovery loop
# claims every in-flight order it finds unleased.


async def stored(orders: Orders, order_id: UUID) -> CustomerOrder:
    async with orders.sessionmaker() as session:
        order = await repository.get_order(session, order_id)
    assert order is not None
    return order


async def test_a_step_writes_only_the_columns_it_changed(orders: Orders) -> None:
    order_id = UUID(await orders.insert())
    async with unit_of_work(orders.sessionmaker) as session:
        order = await repository.lock_order_row(session, order_id)
        assert order is not None
        # Written by a statement of its own in the same transaction (a postponed saga
        # hands its lease back so): the row's save must not write the value it read.
        await session.execute(
            CustomerOrder.__table__.update()
            .where(CustomerOrder.id == order_id)
            .values(lease_owner="someone-else")
        )
        order.retry_rounds += 1
        order.payment_id = "pay_1"
        await repository.save_order_row(session, order)
    after = await stored(orders, order_id)
    assert (after.retry_rounds, after.payment_id) == (1, "pay_1")
    assert after.lease_owner == "someone-else"
    assert (after.status, after.version, after.total) == ("CONFIRMED", 1, 500)


async def test_a_row_saved_twice_writes_each_change_once_and_nothing_unchanged(
    orders: Orders,
) -> None:
    order_id = UUID(await orders.insert())
    before = await stored(orders, order_id)
    async with unit_of_work(orders.sessionmaker) as session:
        order = await repository.lock_order_row(session, order_id)
        assert order is not None
        await repository.save_order_row(session, order)  # nothing changed: no UPDATE
    assert (await stored(orders, order_id)).updated_at == before.updated_at
    async with unit_of_work(orders.sessionmaker) as session:
        order = await repository.lock_order_row(session, order_id)
        assert order is not None
        order.status, order.version = "PROCESSING", order.version + 1
        order.lines = [*order.lines, {"sku": "SKU-2", "qty": 1}]
        await repository.save_order_row(session, order)
        # What is saved is the new baseline: a second save writes only what changed since.
        await session.execute(
            CustomerOrder.__table__.update()
            .where(CustomerOrder.id == order_id)
            .values(status="SHIPPED")
        )
        order.currency = "GBP"
        await repository.save_order_row(session, order)
    after = await stored(orders, order_id)
    assert (after.status, after.version, after.currency) == ("SHIPPED", 2, "GBP")
    assert [line["sku"] for line in after.lines] == ["SKU-1", "SKU-2"]
    assert after.updated_at > before.updated_at


async def test_the_saga_writes_only_the_columns_a_saga_changes(orders: Orders) -> None:
    order_id = UUID(await orders.insert())
    async with unit_of_work(orders.sessionmaker) as session:
        order = await repository.lock_order_row(session, order_id)
        assert order is not None
        order.shipping_address = {"erased": True}
        with pytest.raises(ValueError, match="shipping_address"):
            await repository.save_order_row(session, order)


async def test_the_saga_writes_go_to_the_driver_only_inside_a_begun_transaction(
    orders: Orders,
) -> None:
    # SQLAlchemy sends BEGIN with a transaction's first statement: a write sent to the
    # driver before that would commit on its own, outside the step's transaction.
    order_id = UUID(await orders.insert())
    async with orders.sessionmaker() as session, session.begin():
        order = await repository.get_order(session, order_id)
        assert order is not None
    async with orders.sessionmaker() as session:
        await session.begin()
        with pytest.raises(RuntimeError, match="begun"):
            await repository.record_steps(
                session, order, [StepRecord(Step.REFUND_PAYMENT, StepStatus.RUNNING)]
            )
        await session.rollback()
    # Once begun, they roll back with it.
    async with orders.sessionmaker() as session:
        await session.begin()
        assert await repository.lock_order_row(session, order_id) is not None
        await repository.record_steps(
            session, order, [StepRecord(Step.REFUND_PAYMENT, StepStatus.RUNNING)]
        )
        repository.stage_event(session, order, "order.test", {})
        await repository.write_staged(session)
        await session.rollback()
    assert await steps(orders, order_id) == {}
    async with orders.sessionmaker() as session:
        events = await session.scalars(
            select(OutboxEvent.id).where(OutboxEvent.event_type == "order.test")
        )
        assert events.all() == []


async def test_the_row_of_a_mapped_order_is_the_row_read(orders: Orders) -> None:
    order_id = UUID(await orders.insert(status="DELIVERED"))
    async with orders.sessionmaker() as session:
        mapped = await repository.get_order(session, order_id)
        assert mapped is not None
        read = await repository.read_order_row(session, order_id)
        assert read is not None
        assert repository.order_row(mapped).stored == read.stored  # every column
        assert read.shipping_address == UK_ADDRESS  # decrypted as the ORM does
        assert await repository.read_order_row(session, UUID(int=0)) is None


async def new_checkout(orders: Orders, runner: SagaRunner, *, commit: bool = True) -> Begun:
    """A new order inserted leased to ``runner`` and its first action begun with it."""
    async with orders.sessionmaker() as session:
        transaction = await session.begin()
        order = await repository.insert_order(
            session,
            user_id="user-1",
            idempotency_key=f"key-{time.monotonic_ns()}",
            request_hash="0" * 64,
            items=[{"sku": "SKU-1", "qty": 1}],
            shipping_address=UK_ADDRESS,
            payment_method={"method": "card", "token": "tok_visa"},
            lease_owner=runner.owner,
            lease_ttl_s=30,
        )
        assert order is not None
        begun = await runner.begin(session, order, leased_at=time.monotonic())
        if commit:
            await transaction.commit()
        else:
            await transaction.rollback()
    return begun


async def steps(orders: Orders, order_id: UUID) -> dict[Step, tuple[str, int]]:
    async with orders.sessionmaker() as session:
        rows = await repository.steps_of(session, order_id)
    return {step: (row.status, row.attempts) for step, row in rows.items()}


async def test_a_new_checkout_records_its_first_action_in_its_insert(orders: Orders) -> None:
    runner = orders.state.shards.all[0].saga_runner
    begun = await new_checkout(orders, runner)
    assert begun.action == Step.RESERVE_INVENTORY  # no fraud rule: screening is skipped
    assert await steps(orders, begun.order.id) == {
        Step.SCREEN_FRAUD: (StepStatus.SKIPPED, 1),
        Step.RESERVE_INVENTORY: (StepStatus.RUNNING, 1),
    }
    rolled_back = await new_checkout(orders, runner, commit=False)
    async with orders.sessionmaker() as session:
        found = await session.scalar(
            select(CustomerOrder.id).where(CustomerOrder.id == rolled_back.order.id)
        )
    assert found is None
    assert await steps(orders, rolled_back.order.id) == {}


async def test_the_first_call_follows_the_insert_unless_the_lease_may_be_running_out(
    orders: Orders,
) -> None:
    runner = orders.state.shards.all[0].saga_runner
    # In time: the saga calls inventory (unreachable here: the step fails) at once.
    begun = await new_checkout(orders, runner)
    task = runner.start(begun.order.id, begun=begun)
    assert task is not None
    await task
    assert (await steps(orders, begun.order.id))[Step.RESERVE_INVENTORY] == (
        StepStatus.REJECTED,
        1,
    )
    # Too late: the saga reads the order and checks its lease in a step transaction of
    # its own, which starts the action again (one more attempt) before calling.
    late = await new_checkout(orders, runner)
    task = runner.start(late.order.id, begun=dataclasses.replace(late, use_before=0.0))
    assert task is not None
    await task
    assert (await steps(orders, late.order.id))[Step.RESERVE_INVENTORY] == (
        StepStatus.REJECTED,
        2,
    )
