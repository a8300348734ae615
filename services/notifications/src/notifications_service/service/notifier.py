"""Order and payment events become Telegram messages, exactly once per (event, chat, kind).

For each event: render the text (malformed data is a poison message, dead-lettered at
once), find the user's chat (cached; auth on a miss; none: skipped), claim
``(event id, chat, kind)`` in ``notification_log``, send, mark it sent. A redelivered
event finds its row sent and sends nothing; a second replica holding the same event
finds it claimed and retries later. Telegram failures are retried in place (429
honoured), then left to the stream consumer's bounded retries and dead-letter stream.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram.error import BadRequest, Forbidden, TelegramError

from notifications_service import repository
from notifications_service.clients.auth import UnknownUser
from notifications_service.clients.chats import ChatDirectory
from notifications_service.clients.telegram import TelegramBot
from notifications_service.domain import templates
from notifications_service.events import (
    ORDER_CREATED,
    ORDER_FAILED,
    ORDER_STATUS_CHANGED,
    PAYMENT_CAPTURED,
    PAYMENT_REFUNDED,
    OrderFailedData,
    OrderStatusData,
    PricedOrderData,
    RefundData,
)
from notifications_service.models import NotificationStatus
from notifications_service.repository import Claim
from storefront_kit.events import EventEnvelope, PoisonMessage
from storefront_kit.logging import get_logger

__all__ = ["ClaimBusy", "OrderNotifier", "Planned", "plan"]

logger = get_logger(__name__)
#: What decides whether a debug line is written at all (structlog would build it first).
_STDLIB_LOGGER = logging.getLogger(__name__)


def _log(event: EventEnvelope, planned: "Planned", chat_id: int | None = None) -> Any:
    """The logger bound to the event and the message (only on the paths that log)."""
    bound = logger.bind(event_id=str(event.id), event_type=event.type, kind=planned.kind)
    return bound if chat_id is None else bound.bind(chat_id=chat_id)


def _lines(data: PricedOrderData) -> list[templates.ReceiptLine]:
    return [
        templates.ReceiptLine(
            sku=line.sku, name=line.name or line.sku, qty=line.qty, unit_price=line.unit_price
        )
        for line in data.lines
    ]


@dataclass(frozen=True)
class Planned:
    """The message one event asks for: to whom, what kind, which text."""

    user_id: str
    kind: str
    text: str


def _created(event: EventEnvelope) -> Planned:
    data = PricedOrderData.model_validate(event.data)
    text = templates.order_created(
        order_id=data.order_id, lines=_lines(data), total=data.total, currency=data.currency
    )
    return Planned(data.user_id, "order_created", text)


def _captured(event: EventEnvelope) -> Planned:
    data = PricedOrderData.model_validate(event.data)
    text = templates.receipt(
        order_id=data.order_id,
        lines=_lines(data),
        subtotal=data.subtotal if data.subtotal is not None else data.total,
        total=data.total,
        currency=data.currency,
        paid_at=event.occurred_at,
    )
    return Planned(data.user_id, "receipt", text)


def _status(event: EventEnvelope) -> Planned | None:
    data = OrderStatusData.model_validate(event.data)
    if data.status not in templates.NOTIFIED_STATUSES:
        return None
    text = templates.order_status(
        order_id=data.order_id,
        status=data.status,
        tracking_number=data.tracking_number,
        reason=data.reason,
    )
    return Planned(data.user_id, f"status_{data.status.lower()}", text)


def _failed(event: EventEnvelope) -> Planned:
    data = OrderFailedData.model_validate(event.data)
    text = templates.order_failed(
        order_id=data.order_id, reason=data.reason, total=data.total, currency=data.currency
    )
    return Planned(data.user_id, "order_failed", text)


def _refunded(event: EventEnvelope) -> Planned:
    data = RefundData.model_validate(event.data)
    text = templates.payment_refunded(
        order_id=data.order_id, amount=data.amount, currency=data.currency, reason=data.reason
    )
    return Planned(data.user_id, "refund", text)


_PLANS: dict[str, Callable[[EventEnvelope], Planned | None]] = {
    ORDER_CREATED: _created,
    PAYMENT_CAPTURED: _captured,
    ORDER_STATUS_CHANGED: _status,
    ORDER_FAILED: _failed,
    PAYMENT_REFUNDED: _refunded,
}


def plan(event: EventEnvelope) -> Planned | None:
    """The message ``event`` asks for; None when it asks for none (:class:`PoisonMessage`
    when its data can never make one)."""
    build = _PLANS.get(event.type)
    if build is None:
        return None
    try:
        return build(event)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in error["loc"]) for error in exc.errors()})
        raise PoisonMessage(f"{event.type} data is malformed: {', '.join(fields)}") from None


class ClaimBusy(Exception):
    """Another consumer is sending this notification right now: try again later."""


class OrderNotifier:
    """The ``orders.events`` handler of one replica."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        telegram: TelegramBot,
        chats: ChatDirectory,
        consumer: str,
        lease_s: float,
    ) -> None:
        # Claim and finish are one Core statement each, on a bare pooled connection in
        # autocommit: a single statement is its own transaction, without the BEGIN and
        # COMMIT round trips (asyncpg's autocommit is a driver flag, no SQL either).
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._telegram = telegram
        self._chats = chats
        self._consumer = consumer
        self._lease_s = lease_s

    async def __call__(self, event: EventEnvelope) -> None:
        """Handle one event (the StreamConsumer acks when this returns)."""
        planned = plan(event)
        if planned is None:
            return
        try:
            user_id = UUID(planned.user_id)
        except ValueError:
            raise PoisonMessage(f"user_id {planned.user_id!r} is not a user id") from None
        try:
            chat_id = await self._chats.chat_of(user_id)
        except UnknownUser:
            # No user id: an unknown user may be an erased one, whose id no log line names.
            _log(event, planned).info("notification_skipped", reason="unknown_user")
            return
        if chat_id is None:
            _log(event, planned).info(
                "notification_skipped", reason="no_linked_chat", user_id=str(user_id)
            )
            return
        await self._send_once(event, planned, chat_id)

    async def _finish(
        self, log_id: UUID, status: str, *, message_id: int | None = None, error: str | None = None
    ) -> None:
        async with self._engine.connect() as connection:
            await repository.finish(
                connection, log_id, status=status, message_id=message_id, error=error
            )

    async def _send_once(self, event: EventEnvelope, planned: Planned, chat_id: int) -> None:
        async with self._engine.connect() as connection:
            claim, log_id = await repository.claim(
                connection,
                event_id=event.id,
                event_type=event.type,
                chat_id=chat_id,
                kind=planned.kind,
                consumer=self._consumer,
                lease_s=self._lease_s,
                user_id=planned.user_id,
            )
        if claim is Claim.DONE:
            _log(event, planned, chat_id).info("notification_duplicate_skipped")
            return
        if claim is Claim.BUSY:
            raise ClaimBusy(
                f"{planned.kind} for event {event.id} is being sent by another consumer"
            )
        assert log_id is not None
        try:
            message = await self._telegram.send(chat_id, planned.text)
        except Forbidden as exc:
            await self._finish(log_id, NotificationStatus.UNDELIVERABLE, error=str(exc))
            _log(event, planned, chat_id).info("notification_undeliverable", reason="bot_blocked")
            return
        except BadRequest as exc:
            await self._finish(log_id, NotificationStatus.FAILED, error=str(exc))
            raise PoisonMessage(f"Telegram refused the {planned.kind} message: {exc}") from None
        except TelegramError as exc:
            await self._finish(log_id, NotificationStatus.FAILED, error=type(exc).__name__)
            raise
        await self._finish(log_id, NotificationStatus.SENT, message_id=message.message_id)
        # notification_log is the record of every message sent (its message id and
        # time); the line is for debugging only: at INFO it cost as much CPU as the
        # message's two statements together (issue 17's profile).
        if _STDLIB_LOGGER.isEnabledFor(logging.DEBUG):
            _log(event, planned, chat_id).debug("notification_sent", message_id=message.message_id)
