"""What a step transaction writes: step rows (one upsert for several) and staged events."""

from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from orders_service import repository
from orders_service.domain.saga import Step, StepStatus
from orders_service.models import OutboxEvent, SagaStep
from orders_service.repository import StepRecord, stage_event

Orders = Any  # the `orders` fixture of conftest.py


async def record(orders: Orders, order_id: str, *records: StepRecord) -> None:
    async with orders.sessionmaker() as session, session.begin():
        order = await repository.get_order(session, UUID(order_id), for_update=True)
        assert order is not None
        await repository.record_steps(session, order, records)


async def rows(orders: Orders, order_id: str) -> dict[str, tuple[Any, ...]]:
    async with orders.sessionmaker() as session:
        steps = await repository.steps_of(session, UUID(order_id))
    return {
        step.value: (row.status, row.attempts, row.last_error, row.result)
        for step, row in steps.items()
    }


async def test_several_steps_in_one_call_and_what_an_update_keeps(orders: Orders) -> None:
    order_id = await orders.insert()  # settled: recovery leaves it alone
    await record(
        orders,
        order_id,
        StepRecord(Step.SCREEN_FRAUD, StepStatus.SKIPPED, new_attempt=True, result={"a": 1}),
        StepRecord(Step.RESERVE_INVENTORY, StepStatus.RUNNING, new_attempt=True),
    )
    assert await rows(orders, order_id) == {
        "screen_fraud": ("skipped", 1, None, {"a": 1}),
        "reserve_inventory": ("running", 1, None, None),
    }
    # failed with an error, then run again: the attempts add up, the error stays
    await record(orders, order_id, StepRecord(Step.RESERVE_INVENTORY, StepStatus.FAILED, error="x"))
    await record(
        orders, order_id, StepRecord(Step.RESERVE_INVENTORY, StepStatus.RUNNING, new_attempt=True)
    )
    assert (await rows(orders, order_id))["reserve_inventory"] == ("running", 2, "x", None)
    # success clears the error and sets the result; a later record without one keeps it
    await record(
        orders,
        order_id,
        StepRecord(Step.RESERVE_INVENTORY, StepStatus.SUCCEEDED, result={"lines": 1}),
        StepRecord(Step.CHECK_FRAUD, StepStatus.RUNNING, new_attempt=True),
    )
    await record(orders, order_id, StepRecord(Step.RESERVE_INVENTORY, StepStatus.SUCCEEDED))
    found = await rows(orders, order_id)
    assert found["reserve_inventory"] == ("succeeded", 2, None, {"lines": 1})
    assert found["check_fraud"] == ("running", 1, None, None)
    # "no result" is SQL NULL, not JSON null
    async with orders.sessionmaker() as session:
        nulls = await session.scalar(
            select(SagaStep.id).where(
                SagaStep.order_id == UUID(order_id),
                SagaStep.step == "check_fraud",
                SagaStep.result.is_(None),
            )
        )
    assert nulls is not None


async def test_the_same_step_twice_in_one_call_is_recorded_in_order(orders: Orders) -> None:
    order_id = await orders.insert()  # settled: recovery leaves it alone
    await record(
        orders,
        order_id,
        StepRecord(Step.RESERVE_INVENTORY, StepStatus.RUNNING, new_attempt=True),
        StepRecord(Step.RESERVE_INVENTORY, StepStatus.SUCCEEDED, result={"ok": True}),
    )
    assert (await rows(orders, order_id))["reserve_inventory"] == (
        "succeeded",
        1,
        None,
        {"ok": True},
    )


async def events_of(orders: Orders, order_id: str) -> list[str]:
    async with orders.sessionmaker() as session:
        found = await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
        return [row.event_type for row in found if row.envelope["data"].get("order_id") == order_id]


async def test_staged_events_are_written_when_the_transaction_commits(orders: Orders) -> None:
    order_id = await orders.insert()  # settled: recovery leaves it alone
    async with orders.sessionmaker() as session, session.begin():
        order = await repository.get_order(session, UUID(order_id), for_update=True)
        assert order is not None
        stage_event(session, order, "payment.captured", {"payment_id": "p1"})
        stage_event(session, order, "order.status_changed", {"status": "PAID"})
    assert await events_of(orders, order_id) == ["payment.captured", "order.status_changed"]


async def test_staged_events_of_a_rolled_back_transaction_are_dropped(orders: Orders) -> None:
    order_id = await orders.insert()  # settled: recovery leaves it alone
    async with orders.sessionmaker() as session:
        with pytest.raises(RuntimeError):
            async with session.begin():
                order = await repository.get_order(session, UUID(order_id), for_update=True)
                assert order is not None
                stage_event(session, order, "payment.captured", {"payment_id": "p1"})
                raise RuntimeError("step failed")
        # the same session's next transaction does not carry them along
        async with session.begin():
            order = await repository.get_order(session, UUID(order_id), for_update=True)
            assert order is not None
            stage_event(session, order, "order.status_changed", {"status": "PAID"})
    assert await events_of(orders, order_id) == ["order.status_changed"]
