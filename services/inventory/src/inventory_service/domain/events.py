"""The domain events inventory publishes on ``inventory.events`` (docs/design.md §5)."""

from uuid import UUID

from inventory_service.schemas import ProductOut, StockOut
from storefront_kit.events import EventEnvelope

__all__ = ["SOURCE", "STREAM", "product_deleted", "product_upserted", "stock_changed"]

STREAM = "inventory.events"
SOURCE = "inventory"


def product_upserted(product: ProductOut) -> EventEnvelope:
    """The full public product, stock included: a consumer can rebuild its copy from it."""
    return EventEnvelope.new(
        type="product.upserted", source=SOURCE, data=product.model_dump(mode="json")
    )


def product_deleted(*, product_id: UUID, sku: str) -> EventEnvelope:
    return EventEnvelope.new(
        type="product.deleted", source=SOURCE, data={"id": str(product_id), "sku": sku}
    )


def stock_changed(stock: StockOut | None = None) -> EventEnvelope:
    """Stock after the change; ``version`` lets consumers drop out-of-order events.

    Without ``stock`` the envelope is a template whose ``data`` the repository fills
    in inside the very statement that changes the stock (same shape as ``StockOut``).
    """
    if stock is None:
        return EventEnvelope.new(type="stock.changed", source=SOURCE, data={})
    return EventEnvelope.new(
        type="stock.changed", source=SOURCE, data=stock.model_dump(mode="json")
    )
