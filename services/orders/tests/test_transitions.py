"""Every status change goes through ``transition``: version, event and lease in one go."""

from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select, update

from orders_service import repository
from orders_service.domain.saga import OrderStatus, Reason
from orders_service.models import CustomerOrder, OutboxEvent
from orders_service.service.transitions import transition

Orders = Any  # the `orders` fixture of conftest.py


async def lease(orders: Orders, order_id: str, owner: str) -> None:
    async with orders.sessionmaker() as session, session.begin():
        await session.execute(
            update(CustomerOrder)
            .where(CustomerOrder.id == UUID(order_id))
            .values(lease_owner=owner)
        )


async def status_events(orders: Orders, order_id: str) -> list[dict[str, Any]]:
    async with orders.sessionmaker() as session:
        rows = await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.event_type == "order.status_changed")
            .order_by(OutboxEvent.id)
        )
        return [
            row.envelope["data"] for row in rows if row.envelope["data"]["order_id"] == order_id
        ]


async def test_a_settling_saga_changes_status_version_event_and_lease_in_one_commit(
    orders: Orders,
) -> None:
    order_id = await orders.insert(status="COMPENSATING")
    await lease(orders, order_id, "replica-a")
    async with orders.sessionmaker() as session, session.begin():
        order = await repository.get_order(session, UUID(order_id), for_update=True)
        assert order is not None
        order.reason = Reason.PAYMENT_DECLINED
        await transition(session, order, OrderStatus.FAILED, release_lease_of="replica-a")
        # The loaded row shows the release at once: the saga loop reads it, not the table.
        assert (order.lease_owner, order.lease_expires_at) == (None, None)

    async with orders.sessionmaker() as session:
        stored = await repository.get_order(session, UUID(order_id))
    assert stored is not None
    assert (stored.status, stored.version) == ("FAILED", 2)
    assert (stored.lease_owner, stored.lease_expires_at) == (None, None)
    assert await status_events(orders, order_id) == [
        {
            "order_id": order_id,
            "user_id": "user-1",
            "status": "FAILED",
            "previous": "COMPENSATING",
            "tracking_number": "SBX000000000001",
            "reason": "payment_declined",
        }
    ]


async def test_entering_compensation_records_outcome_and_why(orders: Orders) -> None:
    order_id = await orders.insert(status="RESERVED")
    async with orders.sessionmaker() as session, session.begin():
        order = await repository.get_order(session, UUID(order_id), for_update=True)
        assert order is not None
        await transition(
            session,
            order,
            OrderStatus.COMPENSATING,
            outcome=OrderStatus.FAILED,
            reason=Reason.PAYMENT_UNAVAILABLE,
            detail="x" * 600,
        )
    async with orders.sessionmaker() as session:
        stored = await repository.get_order(session, UUID(order_id))
    assert stored is not None
    assert (stored.status, stored.outcome, stored.reason) == (
        "COMPENSATING",
        "FAILED",
        "payment_unavailable",
    )
    assert stored.reason_detail == "x" * 500
    assert [e["previous"] for e in await status_events(orders, order_id)] == ["RESERVED"]


async def test_a_step_that_keeps_the_status_bumps_nothing(orders: Orders) -> None:
    order_id = await orders.insert(status="RESERVED")
    async with orders.sessionmaker() as session, session.begin():
        order = await repository.get_order(session, UUID(order_id), for_update=True)
        assert order is not None
        # authorize_payment: RESERVED stays RESERVED
        await transition(session, order, OrderStatus.RESERVED, previous="RESERVED")
    async with orders.sessionmaker() as session:
        stored = await repository.get_order(session, UUID(order_id))
    assert stored is not None
    assert stored.version == 1
    assert await status_events(orders, order_id) == []


async def test_a_lease_held_by_another_replica_is_not_released(orders: Orders) -> None:
    order_id = await orders.insert(status="COMPENSATING")
    await lease(orders, order_id, "replica-b")
    async with orders.sessionmaker() as session:  # closed uncommitted: rolled back
        order = await repository.get_order(session, UUID(order_id), for_update=True)
        assert order is not None
        with pytest.raises(ValueError, match="not leased to replica-a"):
            await transition(session, order, OrderStatus.FAILED, release_lease_of="replica-a")
    async with orders.sessionmaker() as session:
        stored = await repository.get_order(session, UUID(order_id))
    assert stored is not None
    assert (stored.status, stored.lease_owner) == ("COMPENSATING", "replica-b")
