"""The events inventory publishes on ``inventory.events`` (docs/design.md §5), with their
payload models: the one definition of each event's ``data``.

The API's product and stock models (:mod:`inventory_service.schemas`) are these
payloads as the admin API shows them; the ``stock.changed`` data that SQL stages is
generated from :class:`StockData` (:mod:`inventory_service.repository`).
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from storefront_kit.events import EventEnvelope

__all__ = [
    "SOURCE",
    "STREAM",
    "ProductData",
    "StockData",
    "StockLevelData",
    "product_deleted",
    "product_upserted",
    "stock_changed",
]

STREAM = "inventory.events"
SOURCE = "inventory"


class _Payload(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class StockLevelData(_Payload):
    on_hand: int
    reserved: int
    available: int


class ProductData(_Payload):
    """``product.upserted`` data: the whole product with its stock level."""

    id: UUID
    sku: str
    name: str
    description: str
    brand: str
    category: str
    attributes: dict[str, Any]
    price: int = Field(description="Integer minor units of `currency`.")
    currency: str
    images: list[str]
    active: bool
    created_at: datetime
    updated_at: datetime
    version: int
    stock: StockLevelData


class StockData(_Payload):
    """``stock.changed`` data: the stock of one sku after the change."""

    sku: str
    product_id: UUID
    on_hand: int
    reserved: int
    available: int
    version: int


def product_upserted(product: ProductData) -> EventEnvelope:
    """The full product, stock included: a consumer can rebuild its copy from it."""
    return EventEnvelope.new(
        type="product.upserted", source=SOURCE, data=product.model_dump(mode="json")
    )


def product_deleted(*, product_id: UUID, sku: str) -> EventEnvelope:
    return EventEnvelope.new(
        type="product.deleted", source=SOURCE, data={"id": str(product_id), "sku": sku}
    )


def stock_changed(stock: StockData | None = None) -> EventEnvelope:
    """Stock after the change; ``version`` lets consumers drop out-of-order events.

    Without ``stock`` the envelope is a template whose ``data`` the repository fills
    in inside the very statement that changes the stock (the fields of ``StockData``).
    """
    if stock is None:
        return EventEnvelope.new(type="stock.changed", source=SOURCE, data={})
    return EventEnvelope.new(
        type="stock.changed", source=SOURCE, data=stock.model_dump(mode="json")
    )
