"""The events notifications reads, in its own models: orders' ``orders.events`` and
auth's ``users.events``.

The producers' shapes as notifications reads them; unknown fields are ignored, so a
producer may grow its payloads without breaking the consumers. Data that does not fit
(a missing order id, a negative quantity) can never become a message: the consumer
dead-letters it at once.
"""

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ERASURE_GROUP",
    "ORDER_CREATED",
    "ORDER_FAILED",
    "ORDER_STATUS_CHANGED",
    "PAYMENT_CAPTURED",
    "PAYMENT_REFUNDED",
    "USERS_STREAM",
    "USER_ERASED",
    "OrderData",
    "OrderFailedData",
    "OrderLine",
    "OrderStatusData",
    "PricedOrderData",
    "RefundData",
]

ORDER_CREATED = "order.created"
PAYMENT_CAPTURED = "payment.captured"
ORDER_STATUS_CHANGED = "order.status_changed"
ORDER_FAILED = "order.failed"
PAYMENT_REFUNDED = "payment.refunded"

#: Auth's stream, and the group notifications reads it with (``user.erased``).
USERS_STREAM = "users.events"
ERASURE_GROUP = "notifications-erasure"
USER_ERASED = "user.erased"

_CURRENCY = Field(pattern=r"^[A-Z]{3}$")


class OrderData(BaseModel):
    """What every order event names: the order and its user."""

    model_config = ConfigDict(extra="ignore")

    order_id: str = Field(min_length=1, max_length=64)
    user_id: str = Field(min_length=1, max_length=64)


class OrderLine(BaseModel):
    """One line of an order as its events carry it."""

    model_config = ConfigDict(extra="ignore")

    sku: str
    name: str = ""
    qty: int = Field(ge=1)
    unit_price: int = Field(ge=0)


class PricedOrderData(OrderData):
    """``order.created`` and ``payment.captured``: the lines and the total."""

    lines: list[OrderLine] = Field(min_length=1)
    subtotal: int | None = None
    total: int
    currency: str = _CURRENCY


class OrderStatusData(OrderData):
    """``order.status_changed``."""

    status: str
    tracking_number: str | None = None
    reason: str | None = None


class OrderFailedData(OrderData):
    """``order.failed``."""

    reason: str | None = None
    total: int | None = None
    currency: str | None = None


class RefundData(OrderData):
    """``payment.refunded``."""

    amount: int = Field(ge=0)
    currency: str = _CURRENCY
    reason: str | None = None
