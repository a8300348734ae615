"""Staff moves and cancellations stage exactly one ``audit.recorded`` event each, in the
transaction of the change; refused or no-op requests, and customers' own cancellations,
record nothing."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from orders_service.models import CustomerOrder
from storefront_kit.audit import AUDIT_EVENT_TYPE, AUDIT_STREAM, AuditEntry
from storefront_kit.events import EventEnvelope

from .conftest import Keys, Orders, running, settings_for

ADMIN_ORDERS = "/api/v1/admin/orders"


@pytest.fixture
async def orders(database_url: str, redis_url: str, keys: Keys) -> AsyncIterator[Orders]:
    # A cancellation answers at once (202) instead of waiting for a saga that, with no
    # providers here, cannot finish: only what the request itself wrote matters.
    settings = settings_for(database_url, redis_url, checkout_wait_s=0)
    async with running(settings, keys) as service:
        yield service


async def _audited(orders: Orders, order_id: str) -> list[dict[str, Any]]:
    async with orders.sessionmaker() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT stream, event_type, envelope FROM outbox_event"
                    " WHERE stream = :stream AND envelope->'data'->>'target_id' = :id"
                    " ORDER BY created_at, id"
                ),
                {"stream": AUDIT_STREAM, "id": order_id},
            )
        ).all()
    entries = []
    for row in rows:
        assert row.event_type == AUDIT_EVENT_TYPE
        envelope = EventEnvelope.model_validate(row.envelope)
        entries.append(AuditEntry.model_validate(envelope.data).model_dump(mode="json"))
    return entries


async def _set_payment(orders: Orders, order_id: str, payment_id: str) -> None:
    async with orders.sessionmaker() as session, session.begin():
        order = await session.get(CustomerOrder, order_id)
        assert order is not None
        order.payment_id = payment_id


async def test_a_status_move_is_recorded_once_with_before_and_after(orders: Orders) -> None:
    order_id = await orders.insert()
    admin = {
        **orders.keys.headers("admin-7", "admin"),
        "X-Request-ID": "audit-move-1",
        "X-Real-IP": "192.0.2.44",
    }

    moved = await orders.client.post(
        f"{ADMIN_ORDERS}/{order_id}/status", json={"status": "PROCESSING"}, headers=admin
    )
    again = await orders.client.post(
        f"{ADMIN_ORDERS}/{order_id}/status", json={"status": "PROCESSING"}, headers=admin
    )
    backwards = await orders.client.post(
        f"{ADMIN_ORDERS}/{order_id}/status", json={"status": "CONFIRMED"}, headers=admin
    )

    assert moved.status_code == 200, moved.text
    assert again.status_code == 200
    assert backwards.status_code in (409, 422)
    [entry] = await _audited(orders, order_id)
    assert entry["action"] == "order.status_changed"
    assert entry["service"] == "orders"
    assert entry["target_type"] == "order"
    assert (entry["actor_id"], entry["actor_roles"]) == ("admin-7", ["admin"])
    assert (entry["request_id"], entry["client_ip"]) == ("audit-move-1", "192.0.2.44")
    assert entry["before"] == {"status": "CONFIRMED", "version": 1}
    assert entry["after"] == {"status": "PROCESSING", "version": 2}


async def test_a_staff_cancellation_is_recorded_once_with_its_refund(orders: Orders) -> None:
    order_id = await orders.insert(user_id="buyer-3")
    await _set_payment(orders, order_id, "pay_audit_1")
    admin = orders.keys.headers("admin-8", "admin")

    cancelled = await orders.client.post(f"{ADMIN_ORDERS}/{order_id}/cancel", headers=admin)
    again = await orders.client.post(f"{ADMIN_ORDERS}/{order_id}/cancel", headers=admin)

    assert cancelled.status_code in (200, 202), cancelled.text
    assert again.status_code in (200, 202)
    [entry] = await _audited(orders, order_id)
    assert entry["action"] == "order.cancelled"
    assert entry["actor_id"] == "admin-8"
    assert entry["before"] == {"status": "CONFIRMED", "cancel_requested": False, "version": 1}
    after = entry["after"]
    assert after["status"] == "COMPENSATING"
    assert after["cancel_requested"] is True
    assert after["reason"] == "cancelled_by_admin"
    assert after["user_id"] == "buyer-3"
    assert after["refund"] == {"payment_id": "pay_audit_1", "amount": 500, "currency": "EUR"}


async def test_customers_and_refused_requests_record_nothing(orders: Orders) -> None:
    own = await orders.insert(user_id="buyer-4")
    shipped = await orders.insert(status="SHIPPED")
    customer = orders.keys.headers("buyer-4")
    admin = orders.keys.headers("admin-9", "admin")
    moderator = orders.keys.headers("mod-9", "moderator")

    by_customer = await orders.client.post(f"/api/v1/orders/{own}/cancel", headers=customer)
    by_moderator = await orders.client.post(
        f"{ADMIN_ORDERS}/{shipped}/status", json={"status": "DELIVERED"}, headers=moderator
    )
    too_late = await orders.client.post(f"{ADMIN_ORDERS}/{shipped}/cancel", headers=admin)

    assert by_customer.status_code in (200, 202), by_customer.text
    assert by_moderator.status_code == 403
    assert too_late.status_code == 409
    assert await _audited(orders, own) == []
    assert await _audited(orders, shipped) == []
