"""The saga's order row without the ORM, and a checkout's first step in its insert.

A step transaction reads the order ``FOR UPDATE`` into a plain ``OrderRow`` and writes
back only the columns it changed, with its step rows and events, in one statement
(issue 17), which can also stand alone, guarded by the row as the saga last wrote it; a
new checkout's first action is recorded ``running`` by the transaction that inserted the
order.
"""

import dataclasses
import time
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from orders_service import repository
from orders_service.domain.saga import Step, StepStatus
from orders_service.models import CustomerOrder, OutboxEvent
from orders_service.repository import StepRecord
from orders_service.service.saga.orchestrator import Begun, FirstSteps
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
        await repository.write_saga_changes(session, order)
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
        await repository.write_saga_changes(session, order)  # nothing changed: no UPDATE
    assert (await stored(orders, order_id)).updated_at == before.updated_at
    async with unit_of_work(orders.sessionmaker) as session:
        order = await repository.lock_order_row(session, order_id)
        assert order is not None
        order.status, order.version = "PROCESSING", order.version + 1
        order.lines = [*order.lines, {"sku": "SKU-2", "qty": 1}]
        await repository.write_saga_changes(session, order)
        # What is saved is the new baseline: a second save writes only what changed since.
        await session.execute(
            CustomerOrder.__table__.update()
            .where(CustomerOrder.id == order_id)
            .values(status="SHIPPED")
        )
        order.currency = "GBP"
        await repository.write_saga_changes(session, order)
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
            await repository.write_saga_changes(session, order)


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
        row = await repository.lock_order_row(session, order_id)
        assert row is not None
        await repository.record_steps(
            session, order, [StepRecord(Step.REFUND_PAYMENT, StepStatus.RUNNING)]
        )
        repository.stage_event(session, order, "order.test", {})
        repository.stage_steps(session, [StepRecord(Step.RELEASE_INVENTORY, StepStatus.RUNNING)])
        await repository.write_saga_changes(session, row)
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


async def new_checkout(
    orders: Orders, runner: SagaRunner, *, commit: bool = True, key: str | None = None
) -> Begun:
    """A new order inserted leased to ``runner`` and its first action begun with it."""
    async with orders.sessionmaker() as session:
        transaction = await session.begin()
        first = runner.first_steps()
        order = await insert(session, runner, key or f"key-{time.monotonic_ns()}", first)
        assert order is not None
        begun = runner.begun(order, first, leased_at=time.monotonic())
        if commit:
            await transaction.commit()
        else:
            await transaction.rollback()
    return begun


async def insert(
    session: AsyncSession, runner: SagaRunner, key: str, first: FirstSteps
) -> CustomerOrder | None:
    return await repository.insert_order(
        session,
        user_id="user-1",
        idempotency_key=key,
        request_hash="0" * 64,
        items=[{"sku": "SKU-1", "qty": 1}],
        shipping_address=UK_ADDRESS,
        payment_method={"method": "card", "token": "tok_visa"},
        lease_owner=runner.owner,
        lease_ttl_s=30,
        steps=first.records,
    )


async def steps(orders: Orders, order_id: UUID) -> dict[Step, tuple[str, int]]:
    async with orders.sessionmaker() as session:
        rows = await repository.steps_of(session, order_id)
    return {step: (row.status, row.attempts) for step, row in rows.items()}


async def test_a_new_checkout_records_its_first_action_in_its_insert(orders: Orders) -> None:
    runner = orders.state.shards.all[0].saga_runner
    key = f"key-{time.monotonic_ns()}"
    begun = await new_checkout(orders, runner, key=key)
    assert begun.action == Step.RESERVE_INVENTORY  # no fraud rule: screening is skipped
    assert await steps(orders, begun.order.id) == {
        Step.SCREEN_FRAUD: (StepStatus.SKIPPED, 1),
        Step.RESERVE_INVENTORY: (StepStatus.RUNNING, 1),
    }
    # The same key again: the insert meets it and writes no step either.
    async with orders.sessionmaker() as session, session.begin():
        assert await insert(session, runner, key, runner.first_steps()) is None
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


async def saga_write(orders: Orders, order: repository.OrderRow, *, event: str) -> bool:
    """``order``'s changes, a step row and an event, as one statement standing alone."""
    async with unit_of_work(orders.sessionmaker) as session:
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        repository.stage_steps(
            session,
            [StepRecord(Step.CAPTURE_PAYMENT, StepStatus.SUCCEEDED, result={"amount": 500})],
        )
        repository.stage_event(session, order, event, {"status": order.status})
        return await repository.write_saga_changes(session, order, if_unchanged=True)


async def outbox_types(orders: Orders, order_id: UUID) -> list[str]:
    async with orders.sessionmaker() as session:
        rows = await session.scalars(
            select(OutboxEvent.event_type).where(
                OutboxEvent.envelope["data"]["order_id"].astext == str(order_id)
            )
        )
        return list(rows.all())


async def leased_row(orders: Orders, order_id: UUID, owner: str) -> repository.OrderRow:
    """The order in flight, leased to ``owner`` for long enough that the app's recovery
    loop leaves it alone, and its row as read (the baseline of a guarded write)."""
    async with unit_of_work(orders.sessionmaker) as session:
        await session.execute(
            CustomerOrder.__table__.update()
            .where(CustomerOrder.id == order_id)
            .values(
                lease_owner=owner,
                lease_expires_at=func.now() + timedelta(minutes=10),
                status="PAID",
            )
        )
    async with orders.sessionmaker() as session:
        row = await repository.read_order_row(session, order_id)
    assert row is not None
    return row


async def test_a_guarded_write_applies_the_row_steps_and_events_together(
    orders: Orders,
) -> None:
    order_id = UUID(await orders.insert())
    row = await leased_row(orders, order_id, "replica-a")
    row.status, row.version, row.payment_id = "SHIPMENT_CREATED", row.version + 1, "pay_9"
    assert await saga_write(orders, row, event="order.test_applied")
    after = await stored(orders, order_id)
    assert (after.status, after.version, after.payment_id) == ("SHIPMENT_CREATED", 2, "pay_9")
    assert await steps(orders, order_id) == {Step.CAPTURE_PAYMENT: (StepStatus.SUCCEEDED, 0)}
    assert await outbox_types(orders, order_id) == ["order.test_applied"]
    # What it wrote is the new baseline: the next guarded write compares with it.
    row.status, row.version = "CONFIRMED", row.version + 1
    assert await saga_write(orders, row, event="order.test_again")
    assert (await stored(orders, order_id)).version == 3


@pytest.mark.parametrize(
    "meanwhile",
    [
        pytest.param({"cancel_requested": True, "version": 2}, id="a cancel"),
        pytest.param({"lease_owner": "replica-b"}, id="the lease taken over"),
        pytest.param({"user_id": "erased-user"}, id="the user pseudonymised"),
    ],
)
async def test_a_guarded_write_finding_the_row_changed_writes_nothing(
    orders: Orders, meanwhile: dict[str, Any]
) -> None:
    order_id = UUID(await orders.insert())
    row = await leased_row(orders, order_id, "replica-a")
    async with unit_of_work(orders.sessionmaker) as session:
        await session.execute(
            CustomerOrder.__table__.update().where(CustomerOrder.id == order_id).values(meanwhile)
        )
    before = await stored(orders, order_id)
    row.status, row.version, row.payment_id = "SHIPMENT_CREATED", row.version + 1, "pay_9"
    assert not await saga_write(orders, row, event="order.test_refused")
    after = await stored(orders, order_id)
    assert (after.status, after.version, after.payment_id, after.updated_at) == (
        before.status,
        before.version,
        before.payment_id,
        before.updated_at,
    )
    assert await steps(orders, order_id) == {}
    assert await outbox_types(orders, order_id) == []
