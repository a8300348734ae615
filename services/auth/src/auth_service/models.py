"""Tables of the ``auth`` database (singular snake_case names, one naming convention).

OTP codes, Telegram link tokens and temporary chat links live in Redis (they expire
within minutes); users and refresh-token families live here. A user's phone and chat id
are stored encrypted, looked up through their blind indexes (:mod:`auth_service.fields`).
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from auth_service.fields import CHAT_CONTEXT, FIELDS, PHONE_CONTEXT
from storefront_kit.db import metadata_with_conventions
from storefront_kit.encryption import EncryptedInt, EncryptedText
from storefront_kit.events import OutboxMixin

__all__ = ["AuditEntry", "Base", "OutboxEvent", "RefreshToken", "UserAccount"]


class Base(DeclarativeBase):
    """Declarative base of the auth service."""

    metadata = metadata_with_conventions()


class UserAccount(Base):
    """A person who logged in by phone (``user`` is reserved in SQL, hence the name)."""

    __tablename__ = "user_account"
    __table_args__ = (
        CheckConstraint(
            "roles <@ ARRAY['admin', 'moderator', 'customer']::varchar[]", name="known_roles"
        ),
        Index("ix_user_account_roles", "roles", postgresql_using="gin"),
        Index("ix_user_account_created_at", "created_at"),
        CheckConstraint(
            "erased_at IS NOT NULL OR (phone IS NOT NULL AND phone_index IS NOT NULL)",
            name="phone_unless_erased",
        ),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    #: E.164, normalised by the domain before it gets here; stored encrypted. NULL only
    #: on an erased user (``erased_at`` set), which no query but the erasure's returns.
    phone: Mapped[str] = mapped_column(EncryptedText(FIELDS, PHONE_CONTEXT), nullable=True)
    #: Blind index of the phone: lookups and uniqueness (set with the phone, always).
    phone_index: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True, nullable=True)
    roles: Mapped[list[str]] = mapped_column(
        ARRAY(String(16)), server_default=text("ARRAY['customer']::varchar[]")
    )
    display_name: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(254))
    locale: Mapped[str | None] = mapped_column(String(16))
    #: The Telegram chat OTP codes go to (FINAL link); one chat belongs to one user.
    telegram_chat_id: Mapped[int | None] = mapped_column(EncryptedInt(FIELDS, CHAT_CONTEXT))
    #: Blind index of the chat (set and cleared with it).
    telegram_chat_index: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    telegram_linked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Set when the user was erased (docs/auth.md, "Export and erasure"): every personal
    #: field is NULL, the account can never log in again and its phone may register anew.
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RefreshToken(Base):
    """One refresh token of a family (a login); only its SHA-256 is stored.

    Rotation marks a token ``used_at`` and adds its child to the same family; a used
    or revoked token presented again revokes every token of the family.
    """

    __tablename__ = "refresh_token"
    __table_args__ = (
        Index("ix_refresh_token_family_id", "family_id"),
        Index("ix_refresh_token_user_id", "user_id"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    family_id: Mapped[UUID]
    user_id: Mapped[UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    #: Hex SHA-256 of the opaque token.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    parent_id: Mapped[UUID | None]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """One staff action of any service (docs/auth.md, "Audit log"): append-only.

    The migration adds a trigger that refuses ``UPDATE``, ``DELETE`` and ``TRUNCATE``;
    the id is the ``audit.recorded`` event's (a UUIDv7), so paging by id is paging by time
    and a redelivered event is stored once.
    """

    __tablename__ = "audit_entry"
    __table_args__ = (
        Index("ix_audit_entry_actor_id", "actor_id", "id"),
        Index("ix_audit_entry_target", "target_type", "target_id", "id"),
        Index("ix_audit_entry_action", "action", "id"),
        Index("ix_audit_entry_occurred_at", "occurred_at"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    service: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[str] = mapped_column(String(200))
    actor_roles: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    request_id: Mapped[str | None] = mapped_column(String(128))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class OutboxEvent(OutboxMixin, Base):
    """Events saved in the transaction of the change (``user.erased``), relayed to streams."""

    __tablename__ = "outbox_event"
