"""Tables of the ``inventory`` database: singular snake_case names, one naming convention.

Every row that stock or reservations shard on carries its shard key: ``stock`` and
``reservation_line`` are keyed by ``sku``; ``reservation`` by ``order_id``.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storefront_kit.db import metadata_with_conventions
from storefront_kit.events import OutboxMixin

__all__ = [
    "Base",
    "OutboxEvent",
    "Product",
    "Reservation",
    "ReservationLine",
    "Stock",
    "StockAdjustment",
]


class Base(DeclarativeBase):
    """Declarative base of the inventory service."""

    metadata = metadata_with_conventions()


class Product(Base):
    """A sellable product; soft deleted by ``deleted_at`` (its sku stays taken)."""

    __tablename__ = "product"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso4217"),
        Index("ix_product_category", "category"),
        Index("ix_product_brand", "brand"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    brand: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(100))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    #: Integer minor units (cents) of ``currency``.
    price: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    images: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Stock(Base):
    """Stock of one sku: ``available = on_hand - reserved``, never negative (checked)."""

    __tablename__ = "stock"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("reserved <= on_hand", name="reserved_within_on_hand"),
    )

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    product_id: Mapped[UUID] = mapped_column(ForeignKey("product.id"), unique=True)
    on_hand: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    reserved: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class StockAdjustment(Base):
    """Audit row of a manual stock change (who, how much, why, and the result)."""

    __tablename__ = "stock_adjustment"
    __table_args__ = (Index("ix_stock_adjustment_sku_created_at", "sku", "created_at"),)

    id: Mapped[UUID] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[UUID] = mapped_column(ForeignKey("product.id"))
    delta: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(200))
    on_hand_after: Mapped[int] = mapped_column(Integer)
    reserved_after: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Reservation(Base):
    """A hold on stock for one order: reserved, then committed, released or expired."""

    __tablename__ = "reservation"
    __table_args__ = (
        CheckConstraint(
            "status IN ('reserved', 'committed', 'released', 'expired', 'returned')",
            name="status_known",
        ),
        # The sweeper only scans live holds; keep that index small.
        Index(
            "ix_reservation_expiring",
            "expires_at",
            postgresql_where=text("status = 'reserved'"),
        ),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    order_id: Mapped[UUID] = mapped_column(unique=True)
    status: Mapped[str] = mapped_column(String(16))
    #: SHA-256 of the normalised reserve request: a retry must match it.
    request_hash: Mapped[str] = mapped_column(String(64))
    total: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReservationLine(Base):
    """One sku of a reservation with the price it was reserved at."""

    __tablename__ = "reservation_line"
    __table_args__ = (CheckConstraint("qty > 0", name="qty_positive"),)

    reservation_id: Mapped[UUID] = mapped_column(
        ForeignKey("reservation.id", ondelete="CASCADE"), primary_key=True
    )
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    qty: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    name: Mapped[str] = mapped_column(String(200))


class OutboxEvent(OutboxMixin, Base):
    """Events saved in the same transaction as the change, relayed to Redis streams."""

    __tablename__ = "outbox_event"
