"""What the orders service tells the rest of the platform.

Domain events go through the outbox to the ``orders.events`` stream (docs/design.md §5); their
``data`` always holds ``order_id`` and ``user_id``, and for ``order.created``,
``order.confirmed`` and ``payment.captured`` also the priced lines, totals and currency
so notifications can render a receipt. Admin alerts are ephemeral Redis pub/sub
messages ``{type, data, occurred_at}`` on ``admin.alerts``.
"""

from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import Counter
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from orders_service.models import CustomerOrder, OutboxEvent
from storefront_kit.audit import AUDIT_STREAM, AuditEntry, audit_event
from storefront_kit.events import EventEnvelope, add_outbox_event
from storefront_kit.logging import get_logger

__all__ = [
    "ALERTS_CHANNEL",
    "SOURCE",
    "STREAM",
    "publish_alert",
    "receipt",
    "stage_audit",
    "stage_event",
    "stage_status_changed",
]

STREAM = "orders.events"
SOURCE = "orders"
ALERTS_CHANNEL = "admin.alerts"

logger = get_logger(__name__)
ALERTS = Counter("orders_admin_alerts_total", "Alerts published to admin.alerts.", ["type"])


def _base(order: CustomerOrder) -> dict[str, Any]:
    return {"order_id": str(order.id), "user_id": order.user_id}


def receipt(order: CustomerOrder) -> dict[str, Any]:
    """The order's priced content: enough to render a receipt."""
    return {
        **_base(order),
        "status": order.status,
        "lines": order.lines,
        "subtotal": order.subtotal,
        "total": order.total,
        "currency": order.currency,
    }


def stage_event(
    session: AsyncSession, order: CustomerOrder, event_type: str, data: dict[str, Any]
) -> None:
    """Stage ``event_type`` in the session's transaction (``order_id``/``user_id`` added)."""
    event = EventEnvelope.new(type=event_type, source=SOURCE, data={**_base(order), **data})
    add_outbox_event(session, OutboxEvent, stream=STREAM, event=event)


def stage_status_changed(session: AsyncSession, order: CustomerOrder, previous: str) -> None:
    """``order.status_changed`` for the order's current status."""
    data: dict[str, Any] = {"status": order.status, "previous": previous}
    if order.tracking_number:
        data["tracking_number"] = order.tracking_number
    if order.reason and order.status in ("FAILED", "CANCELLED", "COMPENSATING"):
        data["reason"] = order.reason
    stage_event(session, order, "order.status_changed", data)


def stage_audit(session: AsyncSession, entry: AuditEntry) -> None:
    """Stage a staff action's audit entry (``audit.recorded`` on ``audit.events``)."""
    add_outbox_event(session, OutboxEvent, stream=AUDIT_STREAM, event=audit_event(entry))


async def publish_alert(redis: Redis, alert_type: str, data: dict[str, Any]) -> None:
    """Publish an admin alert; best effort (pub/sub is ephemeral, a lost alert is logged)."""
    message = {"type": alert_type, "data": data, "occurred_at": datetime.now(UTC).isoformat()}
    try:
        await redis.publish(ALERTS_CHANNEL, orjson.dumps(message, default=str))
    except Exception as exc:  # Redis down must never fail a checkout
        logger.warning("admin_alert_failed", type=alert_type, error=repr(exc))
        return
    ALERTS.labels(alert_type).inc()
