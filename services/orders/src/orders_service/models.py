"""Tables of the ``orders`` database: singular snake_case names, one naming convention.

Every row carries its shard key (``user_id``) so the tables can later be split by user
(see docs/orders.md); ids are UUIDv7, money is integer minor units with a currency.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from orders_service.fields import ADDRESS_CONTEXT, CLIENT_ADDRESS_CONTEXT, FIELDS
from storefront_kit.db import metadata_with_conventions
from storefront_kit.encryption import EncryptedJSON, EncryptedText
from storefront_kit.events import OutboxMixin

__all__ = ["Base", "CustomerOrder", "OutboxEvent", "SagaStep"]

# Statuses a saga still runs for; the recovery index covers only these rows.
IN_FLIGHT_SQL = "status IN ('PENDING', 'RESERVED', 'PAID', 'SHIPMENT_CREATED', 'COMPENSATING')"


class Base(DeclarativeBase):
    """Declarative base of the orders service."""

    metadata = metadata_with_conventions()


class CustomerOrder(Base):
    """One checkout: what was asked, what inventory priced, and where the saga stands.

    (``order`` is an SQL keyword; ``customer_order`` needs no quoting.)
    """

    __tablename__ = "customer_order"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        Index("ix_customer_order_user_id_created_at", "user_id", "created_at"),
        Index("ix_customer_order_status_created_at", "status", "created_at"),
        Index(
            "ix_customer_order_in_flight_lease",
            "lease_expires_at",
            postgresql_where=text(IN_FLIGHT_SQL),
        ),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(64))
    reason_detail: Mapped[str | None] = mapped_column(String(500))
    #: Where compensation leads: FAILED or CANCELLED (set when it starts).
    outcome: Mapped[str | None] = mapped_column(String(32))
    cancel_requested: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    idempotency_key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    #: As the customer asked: ``[{sku, qty}]``.
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    #: As inventory priced them: ``[{sku, qty, unit_price, currency, name}]``.
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    subtotal: Mapped[int | None] = mapped_column(BigInteger)
    total: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    #: The recipient's name, address and phone: stored encrypted (orders_service.fields).
    shipping_address: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON(FIELDS, ADDRESS_CONTEXT))
    #: ``{method, token}``: the provider's card token, never a card number.
    payment_method: Mapped[dict[str, Any]] = mapped_column(JSONB)
    #: Where the checkout came from (the fraud rules count checkouts per address).
    client_address: Mapped[str | None] = mapped_column(
        EncryptedText(FIELDS, CLIENT_ADDRESS_CONTEXT)
    )
    #: The pseudonym auth gives the customer's phone (the token's ``phone_ref``): the
    #: fraud rules count checkouts per phone, across accounts. Never the number itself.
    phone_ref: Mapped[str | None] = mapped_column(String(64))
    payment_id: Mapped[str | None] = mapped_column(String(128))
    shipment_id: Mapped[str | None] = mapped_column(String(128))
    tracking_number: Mapped[str | None] = mapped_column(String(128))
    label_url: Mapped[str | None] = mapped_column(String(2048))
    #: Which replica runs the saga, and until when (renewed while it runs).
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Rounds put off for a later retry (compensations, the final commit): the back-off.
    retry_rounds: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class SagaStep(Base):
    """One action or compensation of an order's saga, with its attempts and outcome."""

    __tablename__ = "saga_step"
    __table_args__ = (UniqueConstraint("order_id", "step"),)

    id: Mapped[UUID] = mapped_column(primary_key=True)
    # No foreign key: the step table may be split with its orders by user_id.
    order_id: Mapped[UUID] = mapped_column()
    user_id: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class OutboxEvent(OutboxMixin, Base):
    """Events saved in the same transaction as the change, relayed to Redis streams."""

    __tablename__ = "outbox_event"
