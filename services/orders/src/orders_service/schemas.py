"""Request and response models. Requests are strict: unknown fields, wrong types and
absurd sizes are refused before any code runs; prices never come from the client."""

from collections import Counter
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from orders_service.domain.saga import OrderStatus
from storefront_kit.cards import contains_card_number

__all__ = [
    "MAX_ITEMS",
    "MAX_QTY",
    "PAYMENT_TOKEN_PATTERN",
    "SKU_PATTERN",
    "AdminOrderOut",
    "OrderCreate",
    "OrderItem",
    "OrderLineOut",
    "OrderOut",
    "OrderPage",
    "PaymentIn",
    "SagaStepOut",
    "ShippingAddress",
    "StatusChange",
]

MAX_ITEMS = 50
MAX_QTY = 100
SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
#: A provider's card token (``tok_...``) or payment method id (``pm_...``): a prefix, an
#: underscore and up to 100 letters, digits and underscores. Nothing else is a token:
#: a card number, with or without a prefix, is refused (see storefront_kit.cards).
PAYMENT_TOKEN_PATTERN = r"^(?:tok|pm)_[A-Za-z0-9_]{1,100}$"  # noqa: S105 (a pattern)

Sku = Annotated[str, StringConstraints(pattern=SKU_PATTERN, min_length=1, max_length=64)]


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Place = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
PostalCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OrderItem(_Request):
    """One line of the cart: which product and how many (the price comes from inventory)."""

    sku: Sku
    qty: Annotated[int, Field(ge=1, le=MAX_QTY)]


class ShippingAddress(_Request):
    """Where the parcel goes."""

    name: Name
    line1: Line
    line2: Line | None = None
    city: Place
    region: Place | None = None
    postal_code: PostalCode
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = Field(
        description="ISO 3166-1 alpha-2 country code.", examples=["DE"]
    )
    phone: Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{6,14}$")] | None = Field(
        default=None, description="E.164.", examples=["+4915112345678"]
    )
    notes: Annotated[str, StringConstraints(max_length=500)] | None = None


class PaymentIn(_Request):
    """How to pay: a card token from the payment provider's client-side SDK.

    Never a card number: the card is entered in the provider's SDK, which hands back the
    token. A value that is not a token is refused without being repeated in the problem.
    """

    method: Literal["card"]
    token: Annotated[
        str, StringConstraints(pattern=PAYMENT_TOKEN_PATTERN, min_length=5, max_length=104)
    ] = Field(
        description="The provider's token (`tok_...` or `pm_...`), never a card number.",
        examples=["tok_visa"],
    )


class OrderCreate(_Request):
    """``POST /api/v1/orders``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [{"sku": "TSHIRT-RED-M", "qty": 2}],
                    "shipping_address": {
                        "name": "Ada Lovelace",
                        "line1": "12 Analytical St",
                        "city": "London",
                        "postal_code": "N1 9GU",
                        "country": "GB",
                    },
                    "payment": {"method": "card", "token": "tok_visa"},
                }
            ]
        }
    )

    items: Annotated[list[OrderItem], Field(min_length=1, max_length=MAX_ITEMS)]
    shipping_address: ShippingAddress
    payment: PaymentIn

    @model_validator(mode="before")
    @classmethod
    def _no_card_numbers(cls, data: Any) -> Any:
        # The route refuses these before validation (deps.refuse_card_numbers) with its
        # own problem; this keeps the model itself from ever holding one. The message
        # names no value: validation errors must not echo a card number.
        if contains_card_number(data):
            raise PydanticCustomError("card_number_refused", "A card number is not accepted.")
        return data

    @field_validator("items")
    @classmethod
    def _distinct_skus(cls, items: list[OrderItem]) -> list[OrderItem]:
        duplicates = sorted(sku for sku, n in Counter(i.sku for i in items).items() if n > 1)
        if duplicates:
            raise ValueError(f"each sku at most once per order: {', '.join(duplicates)}")
        return items


class StatusChange(_Request):
    """``POST /api/v1/admin/orders/{id}/status``: the next fulfilment status."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "PROCESSING"}]})

    status: Literal["PROCESSING", "SHIPPED", "DELIVERED"]


class Review(_Request):
    """``POST /api/v1/admin/orders/{id}/review``: staff decide on an order ON_HOLD."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"decision": "approve", "note": "known customer"}]}
    )

    decision: Literal["approve", "reject"]
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None


class _Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class OrderLineOut(_Response):
    sku: str
    qty: int
    unit_price: int = Field(description="Integer minor units of `currency`, set by inventory.")
    currency: str
    name: str


class OrderItemOut(_Response):
    sku: str
    qty: int


class OrderOut(_Response):
    """An order as its owner sees it."""

    id: UUID
    status: OrderStatus
    reason: str | None = Field(
        description="Why it failed or was cancelled (stable code), e.g. `out_of_stock`."
    )
    reason_detail: str | None
    items: list[OrderItemOut]
    lines: list[OrderLineOut] = Field(description="Priced by inventory once reserved.")
    subtotal: int | None
    total: int | None
    currency: str | None
    shipping_address: dict[str, Any]
    tracking_number: str | None
    label_url: str | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime


class SagaStepOut(_Response):
    step: str
    kind: str
    status: str
    attempts: int
    last_error: str | None
    result: dict[str, Any] | None
    updated_at: datetime


class AdminOrderOut(OrderOut):
    """An order as staff see it: whose, the provider references and the saga's steps."""

    user_id: str
    payment_id: str | None
    shipment_id: str | None
    outcome: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    version: int
    steps: list[SagaStepOut] = Field(default_factory=list)


class OrderPage(BaseModel):
    items: list[OrderOut]
    total: int
    page: int
    size: int


class AdminOrderPage(BaseModel):
    items: list[AdminOrderOut]
    total: int
    page: int
    size: int


__all__ += ["AdminOrderPage", "OrderItemOut", "Review"]


# -- Export (GET /internal/orders/users/{user_id}/export, for auth) --------------------


class ExportedStep(_Response):
    """One saga step of an exported order."""

    step: str
    kind: str
    status: str
    attempts: int
    created_at: datetime
    updated_at: datetime


class ExportedOrder(_Response):
    """An order with everything orders holds about it (auth's export document)."""

    id: UUID
    status: str
    reason: str | None
    reason_detail: str | None
    items: list[dict[str, Any]]
    lines: list[dict[str, Any]]
    subtotal: int | None
    total: int | None
    currency: str | None
    shipping_address: dict[str, Any]
    payment_method: dict[str, Any]
    client_address: str | None
    #: The pseudonym of the customer's phone the fraud rules count by (not the number).
    phone_ref: str | None
    payment_id: str | None
    shipment_id: str | None
    tracking_number: str | None
    label_url: str | None
    steps: list[ExportedStep]
    created_at: datetime
    updated_at: datetime


class ExportedOrders(_Response):
    """The orders part of a user's data export."""

    orders: list[ExportedOrder]


__all__ += ["ExportedOrder", "ExportedOrders", "ExportedStep"]
