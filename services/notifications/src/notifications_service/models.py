"""Tables of the ``notifications`` database (singular snake_case names, one naming convention)."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from notifications_service.fields import CHAT_CONTEXT, FIELDS
from storefront_kit.db import metadata_with_conventions
from storefront_kit.encryption import EncryptedInt

__all__ = ["Base", "NotificationLog", "NotificationStatus"]


class Base(DeclarativeBase):
    """Declarative base of the notifications service."""

    metadata = metadata_with_conventions()


class NotificationStatus:
    """Where one notification stands (``notification_log.status``)."""

    SENDING = "sending"  # claimed by a replica that is sending it right now
    SENT = "sent"  # Telegram accepted it: never sent again
    FAILED = "failed"  # the last try failed; a retry of the event may claim it again
    UNDELIVERABLE = "undeliverable"  # the chat blocked the bot or is gone: not retried


class NotificationLog(Base):
    """One message per (event, chat, kind): claimed before sending, marked sent after.

    The unique key is what makes redelivered events and concurrent replicas send a
    message at most once (see docs/notifications.md).
    """

    __tablename__ = "notification_log"
    __table_args__ = (
        UniqueConstraint("event_id", "chat_index", "kind"),
        Index("ix_notification_log_created_at", "created_at"),
        Index("ix_notification_log_user_id", "user_id"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    event_id: Mapped[UUID] = mapped_column()
    event_type: Mapped[str] = mapped_column(String(64))
    #: Whom the message was for (the event's ``user_id``): a data export lists these
    #: rows and an erasure deletes them. NULL on rows written before it was recorded.
    user_id: Mapped[str | None] = mapped_column(String(64))
    #: The Telegram chat, stored encrypted (notifications_service.fields).
    chat_id: Mapped[int] = mapped_column(EncryptedInt(FIELDS, CHAT_CONTEXT))
    #: Blind index of the chat: the unique key and lookups use it.
    chat_index: Mapped[bytes] = mapped_column(LargeBinary(32))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    #: The consumer that holds (or last held) the claim.
    claimed_by: Mapped[str] = mapped_column(String(128))
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="1")
    #: Telegram's message id once sent.
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(String(500))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
