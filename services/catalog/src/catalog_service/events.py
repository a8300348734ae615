"""The events catalog consumes: inventory's ``inventory.events``, in catalog's own models.

Inventory's shapes as catalog reads them; unknown fields are ignored, so inventory may
grow its payloads without breaking the listener.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "PRODUCT_DELETED",
    "PRODUCT_UPSERTED",
    "STOCK_CHANGED",
    "ProductData",
    "ProductDeletedData",
    "StockData",
    "StockLevel",
]

PRODUCT_UPSERTED = "product.upserted"
PRODUCT_DELETED = "product.deleted"
STOCK_CHANGED = "stock.changed"


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class StockLevel(_Payload):
    on_hand: int = Field(ge=0)
    reserved: int = Field(ge=0)
    available: int = Field(ge=0)
    #: Inventory's stock version, when it sends one (the snapshot in product events may not).
    version: int | None = Field(default=None, ge=0)


class ProductData(_Payload):
    """``product.upserted`` data, and one item of inventory's export."""

    id: UUID
    sku: str = Field(min_length=1, max_length=64)
    name: str = Field(max_length=1000)
    description: str = Field(default="", max_length=100_000)
    brand: str = Field(max_length=256)
    category: str = Field(max_length=256)
    attributes: dict[str, Any] = Field(default_factory=dict)
    price: int = Field(ge=0)
    currency: str = Field(min_length=3, max_length=3)
    images: list[str] = Field(default_factory=list)
    active: bool = True
    created_at: datetime
    updated_at: datetime
    version: int = Field(ge=1)
    stock: StockLevel


class ProductDeletedData(_Payload):
    id: UUID
    sku: str


class StockData(_Payload):
    """``stock.changed`` data."""

    sku: str
    product_id: UUID
    on_hand: int = Field(ge=0)
    reserved: int = Field(ge=0)
    available: int = Field(ge=0)
    version: int = Field(ge=1)
