"""Order and payment events become Telegram messages, exactly once per (event, chat, kind).

For each event: render the text (malformed data is a poison message, dead-lettered at
once), find the user's chat (cached; auth on a miss; none: skipped), claim
``(event id, chat, kind)`` in ``notification_log``, send, mark it sent. A redelivered
event finds its row sent and sends nothing; a second replica holding the same event
finds it claimed and retries later. Telegram failures are retried in place (429
honoured), then left to the stream consumer's bounded retries and dead-letter stream.

A consumer batch goes through these steps together (:meth:`OrderNotifier.handle_batch`):
one chat lookup round trip for all its users, one claim statement, the sends
concurrently (bounded), one finish statement; each entry keeps its own outcome.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence
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
from notifications_service.repository import Claim, Finished, Key, Wanted
from storefront_kit.events import BatchEntry, EventEnvelope, PoisonMessage
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


@dataclass(slots=True)
class _Message:
    """One message of a batch on its way: its entry, text, chat and claimed row."""

    position: int
    entry: BatchEntry
    planned: Planned
    chat_id: int
    wanted: Wanted
    log_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class _Sent:
    """How a send ended: the row to record (None: left to its lease) and the outcome."""

    finished: Finished | None
    outcome: Exception | None = None
    message_id: int | None = None


class OrderNotifier:
    """The ``orders.events`` handler of one replica (a kit ``BatchHandler``)."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        telegram: TelegramBot,
        chats: ChatDirectory,
        consumer: str,
        lease_s: float,
        send_concurrency: int = 16,
    ) -> None:
        # Claim and finish are one Core statement each (for a whole batch), on a bare
        # pooled connection in autocommit: a single statement is its own transaction,
        # without the BEGIN and COMMIT round trips (asyncpg's autocommit is a driver
        # flag, no SQL either).
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._telegram = telegram
        self._chats = chats
        self._consumer = consumer
        self._lease_s = lease_s
        #: Sends of a batch in flight at once (the bot's connection pool: more would
        #: only wait there, against its timeout).
        self._sending = asyncio.Semaphore(send_concurrency)

    async def __call__(self, event: EventEnvelope) -> None:
        """Handle one event (raises what its outcome in a batch would be)."""
        (outcome,) = await self.handle_batch([BatchEntry("", event)])
        if outcome is not None:
            raise outcome

    async def handle_batch(self, entries: Sequence[BatchEntry]) -> list[Exception | None]:
        """Handle a consumer batch; one outcome per entry (None: done, acknowledge it)."""
        outcomes: list[Exception | None] = [None] * len(entries)
        wanted: list[tuple[int, BatchEntry, Planned, UUID]] = []
        for position, entry in enumerate(entries):
            try:
                with entry.scope():
                    found = _planned(entry.event)
            except Exception as exc:
                outcomes[position] = exc
                continue
            if found is not None:
                wanted.append((position, entry, *found))
        if not wanted:
            return outcomes
        messages = await self._find_chats(wanted, outcomes)
        if messages:
            await self._claim_and_send(messages, outcomes)
        return outcomes

    async def _find_chats(
        self,
        wanted: list[tuple[int, BatchEntry, Planned, UUID]],
        outcomes: list[Exception | None],
    ) -> list[_Message]:
        """The messages that have a chat; skips and failures go to ``outcomes``."""
        try:
            chats = await self._chats.chats_of(user_id for _, _, _, user_id in wanted)
        except Exception as exc:  # Redis down: every entry that needed a chat fails
            for position, *_ in wanted:
                outcomes[position] = exc
            return []
        messages: list[_Message] = []
        for position, entry, planned, user_id in wanted:
            chat_id = chats[user_id]
            if isinstance(chat_id, UnknownUser):
                # No user id: an unknown user may be an erased one, whose id no log line names.
                with entry.scope():
                    _log(entry.event, planned).info("notification_skipped", reason="unknown_user")
            elif isinstance(chat_id, Exception):
                outcomes[position] = chat_id
            elif chat_id is None:
                with entry.scope():
                    _log(entry.event, planned).info(
                        "notification_skipped", reason="no_linked_chat", user_id=str(user_id)
                    )
            else:
                event = entry.event
                row = Wanted(
                    event_id=event.id,
                    event_type=event.type,
                    user_id=planned.user_id,
                    chat_id=chat_id,
                    kind=planned.kind,
                )
                messages.append(_Message(position, entry, planned, chat_id, row))
        return messages

    async def _claim_and_send(
        self, messages: list[_Message], outcomes: list[Exception | None]
    ) -> None:
        # Copies of one event in one batch (a relay that published twice) share the
        # first copy's row and outcome: one statement cannot claim a row twice.
        first: dict[Key, _Message] = {}
        copies: list[_Message] = []
        for message in messages:
            if message.wanted.key in first:
                copies.append(message)
            else:
                first[message.wanted.key] = message
        try:
            async with self._engine.connect() as connection:
                claims = await repository.claim_many(
                    connection,
                    [message.wanted for message in first.values()],
                    consumer=self._consumer,
                    lease_s=self._lease_s,
                )
        except Exception as exc:
            for message in messages:
                outcomes[message.position] = exc
            return
        sending: list[_Message] = []
        for key, message in first.items():
            claim, message.log_id = claims[key]
            if claim is Claim.DONE:
                with message.entry.scope():
                    _log(message.entry.event, message.planned, message.chat_id).info(
                        "notification_duplicate_skipped"
                    )
            elif claim is Claim.BUSY:
                outcomes[message.position] = ClaimBusy(
                    f"{message.planned.kind} for event {message.entry.event.id} "
                    "is being sent by another consumer"
                )
            else:
                sending.append(message)
        if sending:
            await self._send_all(sending, outcomes)
        for copy in copies:
            outcomes[copy.position] = outcomes[first[copy.wanted.key].position]

    async def _send_all(self, sending: list[_Message], outcomes: list[Exception | None]) -> None:
        """Send the claimed messages concurrently, then record them in one statement."""
        results = await asyncio.gather(*(self._send(message) for message in sending))
        finished = [result.finished for result in results if result.finished is not None]
        try:
            async with self._engine.connect() as connection:
                await repository.finish_many(connection, finished)
        except Exception as exc:
            # Not recorded: the rows stay claimed until their lease, then sent again.
            for message in sending:
                outcomes[message.position] = exc
            return
        for message, result in zip(sending, results, strict=True):
            outcomes[message.position] = result.outcome
            if result.finished is None:
                continue
            status = result.finished.status
            if status == NotificationStatus.UNDELIVERABLE:
                with message.entry.scope():
                    _log(message.entry.event, message.planned, message.chat_id).info(
                        "notification_undeliverable", reason="bot_blocked"
                    )
            elif status == NotificationStatus.SENT and _STDLIB_LOGGER.isEnabledFor(logging.DEBUG):
                # notification_log is the record of every message sent (its message id
                # and time); the line is for debugging only: at INFO it cost as much CPU
                # as the message's two statements together (issue 17's profile).
                with message.entry.scope():
                    _log(message.entry.event, message.planned, message.chat_id).debug(
                        "notification_sent", message_id=result.message_id
                    )

    async def _send(self, message: _Message) -> _Sent:
        """One send, in the entry's own context; never raises but for cancellation."""
        log_id = message.log_id
        assert log_id is not None
        kind = message.planned.kind
        async with self._sending:
            with message.entry.scope():
                try:
                    message_id = await self._telegram.send(message.chat_id, message.planned.text)
                except Forbidden as exc:
                    return _Sent(Finished(log_id, NotificationStatus.UNDELIVERABLE, error=str(exc)))
                except BadRequest as exc:
                    poison = PoisonMessage(f"Telegram refused the {kind} message: {exc}")
                    failed = Finished(log_id, NotificationStatus.FAILED, error=str(exc))
                    return _Sent(failed, poison)
                except TelegramError as exc:
                    failed = Finished(log_id, NotificationStatus.FAILED, error=type(exc).__name__)
                    return _Sent(failed, exc)
                except Exception as exc:
                    return _Sent(None, exc)
        return _Sent(
            Finished(log_id, NotificationStatus.SENT, message_id=message_id),
            message_id=message_id,
        )


def _planned(event: EventEnvelope) -> tuple[Planned, UUID] | None:
    """The event's message and its user, or None (:class:`PoisonMessage` when it can
    never make one)."""
    planned = plan(event)
    if planned is None:
        return None
    try:
        return planned, UUID(planned.user_id)
    except ValueError:
        raise PoisonMessage(f"user_id {planned.user_id!r} is not a user id") from None
