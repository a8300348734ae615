"""What the orders service tells the rest of the platform.

Domain events go through the outbox to the ``orders.events`` stream (docs/design.md §5); their
``data`` always holds ``order_id`` and ``user_id``, and for ``order.created``,
``order.confirmed`` and ``payment.captured`` also the priced lines, totals and currency
so notifications can render a receipt. Admin alerts are ephemeral Redis pub/sub
messages ``{type, data, occurred_at}`` on ``admin.alerts``.

Domain events are staged on the session and written, all of a transaction's at once, by
one prebuilt ``INSERT`` just before it commits (a ``before_commit`` hook), not as ORM
objects: a saga step then costs no unit-of-work for its events (issue 17). They still
commit or roll back with the change that caused them.
"""

from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import Counter
from redis.asyncio import Redis
from sqlalchemy import Table, bindparam, event
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from orders_service.models import CustomerOrder, OutboxEvent
from storefront_kit.audit import AUDIT_STREAM, AuditEntry, audit_event
from storefront_kit.events import EventEnvelope, add_outbox_event, outbox_staged
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
    """Stage ``event_type`` in the session's transaction (``order_id``/``user_id`` added).

    Written when the transaction commits (:func:`_write_staged`), dropped if it does not.
    """
    envelope = EventEnvelope.new(type=event_type, source=SOURCE, data={**_base(order), **data})
    staged: list[dict[str, Any]] | None = session.info.get(_STAGED)
    if staged is None:
        staged = session.info[_STAGED] = []
        outbox_staged(session)  # wake the relay once this transaction commits
    staged.append(
        {
            "p_id": envelope.id,
            "p_stream": STREAM,
            "p_event_type": envelope.type,
            "p_envelope": orjson.loads(envelope.model_dump_json()),
        }
    )


_STAGED = "orders_service.staged_events"
_OUTBOX: Table = OutboxEvent.__table__  # type: ignore[assignment]
#: Built once, run as one executemany per transaction (one round trip).
_INSERT_OUTBOX = insert(_OUTBOX).values(
    id=bindparam("p_id", type_=_OUTBOX.c.id.type),
    stream=bindparam("p_stream", type_=_OUTBOX.c.stream.type),
    event_type=bindparam("p_event_type", type_=_OUTBOX.c.event_type.type),
    envelope=bindparam("p_envelope", type_=JSONB()),
)


@event.listens_for(Session, "before_commit")
def _write_staged(session: Session) -> None:
    """Insert the events staged in the transaction that is about to commit."""
    rows = session.info.pop(_STAGED, None)
    if rows:
        session.connection().execute(_INSERT_OUTBOX, rows if len(rows) > 1 else rows[0])


@event.listens_for(Session, "after_transaction_end")
def _drop_staged(session: Session, transaction: SessionTransaction) -> None:
    """A transaction that ended without committing takes its staged events with it."""
    if transaction.parent is None:
        session.info.pop(_STAGED, None)


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
