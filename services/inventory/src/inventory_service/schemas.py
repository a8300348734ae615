"""Request and response models. Requests are strict: unknown fields, wrong types and
absurd sizes are refused before any code runs (limits that depend on settings are
checked again by the domain)."""

from collections import Counter
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    field_validator,
    model_validator,
)

from inventory_service.events import ProductData, StockData, StockLevelData

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_IMAGES",
    "MAX_QTY",
    "MAX_RESERVATION_LINES",
    "MAX_TTL_S",
    "ExportPage",
    "OrderRef",
    "ProductCreate",
    "ProductOut",
    "ProductPage",
    "ProductPatch",
    "ReservationLineOut",
    "ReservationOut",
    "ReservationStatus",
    "ReserveItem",
    "ReserveRequest",
    "Sku",
    "StockAdjust",
    "StockAdjustmentOut",
    "StockLevel",
    "StockOut",
]

# Hard ceilings of the wire format; settings may lower them (never raise them).
MAX_QTY = 10_000
MAX_RESERVATION_LINES = 1000
MAX_TTL_S = 7 * 24 * 3600
MAX_ATTRIBUTES = 50
MAX_IMAGES = 20
MAX_PRICE = 10**12
MAX_STOCK = 1_000_000_000

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
Sku = Annotated[str, StringConstraints(pattern=SKU_PATTERN, min_length=1, max_length=64)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Description = Annotated[str, StringConstraints(max_length=5000)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Price = Annotated[int, Field(ge=0, le=MAX_PRICE, description="Integer minor units (cents).")]
ImageUrl = Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2048)]
AttributeKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
AttributeValue = (
    Annotated[str, StringConstraints(max_length=500)]
    | Annotated[int, Field(ge=-(10**15), le=10**15)]
    | Annotated[float, Field(allow_inf_nan=False)]
    | bool
)
Attributes = Annotated[dict[AttributeKey, AttributeValue], Field(max_length=MAX_ATTRIBUTES)]
Images = Annotated[list[ImageUrl], Field(max_length=MAX_IMAGES)]
# JSON has no UUID type: accept the canonical string even in strict models.
WireUUID = Annotated[UUID, Strict(False)]

ReservationStatus = Literal["reserved", "committed", "released", "expired", "returned"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- products -----------------------------------------------------------------------------


class ProductCreate(_Request):
    """A new product; ``initial_stock`` units are put on hand (audited)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sku": "TSHIRT-RED-M",
                    "name": "Red T-shirt (M)",
                    "description": "Organic cotton.",
                    "brand": "Acme",
                    "category": "apparel",
                    "attributes": {"color": "red", "size": "M"},
                    "price": 1999,
                    "currency": "EUR",
                    "images": ["https://img.example/tshirt-red.jpg"],
                    "initial_stock": 25,
                }
            ]
        }
    )

    sku: Sku
    name: Name
    description: Description = ""
    brand: Label
    category: Label
    attributes: Attributes = Field(default_factory=dict)
    price: Price
    currency: Currency
    images: Images = Field(default_factory=list)
    active: bool = True
    initial_stock: Annotated[int, Field(ge=0, le=MAX_STOCK)] = 0


def _patch_schema(schema: dict[str, Any]) -> None:
    # Documented as accepted: no field may be null, and at least one must be sent (the
    # ``None`` defaults only mark a field as optional).
    for field_schema in schema.get("properties", {}).values():
        options = field_schema.pop("anyOf", None)
        if options is not None:
            field_schema.update(next(o for o in options if o.get("type") != "null"))
        field_schema.pop("default", None)
    schema["minProperties"] = 1
    schema["examples"] = [{"price": 1799, "active": True}]


class ProductPatch(_Request):
    """A partial update: only the fields sent change (``sku`` never does)."""

    model_config = ConfigDict(json_schema_extra=_patch_schema)

    name: Name | None = None
    description: Description | None = None
    brand: Label | None = None
    category: Label | None = None
    attributes: Attributes | None = None
    price: Price | None = None
    currency: Currency | None = None
    images: Images | None = None
    active: bool | None = None

    @model_validator(mode="after")
    def _something_set_and_nothing_null(self) -> "ProductPatch":
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"fields cannot be null: {', '.join(nulls)}")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields that were sent, by name."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class StockLevel(StockLevelData, _Response):
    pass


class ProductOut(ProductData, _Response):
    """The public product, with its live stock level (also the ``product.upserted`` data)."""

    stock: StockLevel


class ProductPage(_Response):
    items: list[ProductOut]
    total: int
    page: int
    size: int


class ExportPage(_Response):
    """One keyset page of the full export; pass ``next_after`` as ``after`` for the next."""

    items: list[ProductOut]
    next_after: str | None


class StockAdjust(_Request):
    """A manual stock change: ``delta`` units on hand (negative removes), with a reason."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"delta": 10, "reason": "delivery #4411"}]}
    )

    delta: Annotated[int, Field(ge=-MAX_STOCK, le=MAX_STOCK)]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("delta must not be zero")
        return value


class StockOut(StockData, _Response):
    """The stock of one sku (also the ``stock.changed`` data)."""


class StockAdjustmentOut(_Response):
    id: UUID
    sku: str
    delta: int
    reason: str
    actor: str
    on_hand_after: int
    reserved_after: int
    created_at: datetime


# --- reservations ---------------------------------------------------------------------


class ReserveItem(_Request):
    sku: Sku
    qty: Annotated[int, Field(gt=0, le=MAX_QTY)]


class ReserveRequest(_Request):
    """Hold every line or none, for ``ttl_s`` seconds (the service default when omitted)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "019376b2-6f1e-7c3a-9d4e-2b8f0a1c5e7d",
                    "items": [{"sku": "TSHIRT-RED-M", "qty": 2}],
                    "ttl_s": 900,
                }
            ]
        }
    )

    order_id: WireUUID
    items: Annotated[list[ReserveItem], Field(min_length=1, max_length=MAX_RESERVATION_LINES)]
    ttl_s: Annotated[int, Field(gt=0, le=MAX_TTL_S)] | None = None

    @field_validator("items")
    @classmethod
    def _distinct_skus(cls, items: list[ReserveItem]) -> list[ReserveItem]:
        counts = Counter(item.sku for item in items)
        duplicates = sorted(sku for sku, n in counts.items() if n > 1)
        if duplicates:
            raise ValueError(f"each sku at most once per reservation: {', '.join(duplicates)}")
        return items


class OrderRef(_Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"order_id": "019376b2-6f1e-7c3a-9d4e-2b8f0a1c5e7d"}]}
    )

    order_id: WireUUID


class ReservationLineOut(_Response):
    sku: str
    qty: int
    unit_price: int
    currency: str
    name: str


class ReservationOut(_Response):
    """A reservation with the prices it was made at (orders never trusts client prices)."""

    order_id: UUID
    status: ReservationStatus
    expires_at: datetime
    lines: list[ReservationLineOut]
    total: int
    currency: str
