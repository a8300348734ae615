"""What a product document becomes when an event arrives: pure rules, no Elasticsearch.

A document carries two versions from inventory: ``version`` (the product row) and
``stock_version`` (the stock row). Each ``merge`` takes the current document (or
``None``) and an event's payload and returns the new document, or the
:class:`Outcome` that says why the current one stays: an older event never overwrites
a newer document, whatever order events arrive in. Deletion is final in inventory, so
a delete leaves a tombstone (``deleted: true``) that later, older upserts cannot
resurrect. :mod:`catalog_service.repository` writes what these decide.
"""

import enum
from typing import Any

from catalog_service.events import ProductData, ProductDeletedData, StockData

__all__ = [
    "Document",
    "Outcome",
    "merge_delete",
    "merge_stock",
    "merge_upsert",
    "product_document",
]

Document = dict[str, Any]
_STOCK_FIELDS = ("on_hand", "reserved", "available", "stock_version")


class Outcome(enum.Enum):
    """What a write did: changed the document, found it already there, or found it newer."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"


def product_document(product: ProductData) -> Document:
    """The indexed form of an inventory product (its stock snapshot included)."""
    return {
        "id": str(product.id),
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "brand": product.brand,
        "category": product.category,
        "attributes": product.attributes,
        "price": product.price,
        "currency": product.currency,
        "images": product.images,
        "active": product.active,
        "deleted": False,
        "on_hand": product.stock.on_hand,
        "reserved": product.stock.reserved,
        "available": product.stock.available,
        "created_at": product.created_at.isoformat(),
        "updated_at": product.updated_at.isoformat(),
        "version": product.version,
        # A snapshot without a stock version loses to any stock.changed event.
        "stock_version": product.stock.version or 0,
    }


def _kept(current: Document, field: str, version: int) -> Outcome | None:
    """Why ``current`` stays against an event of ``version`` (of its ``field``): it is a
    tombstone or newer (stale), or as new (a duplicate); None when the event is newer."""
    if current.get("deleted"):
        return Outcome.STALE
    held = int(current.get(field, 0))
    if held > version:
        return Outcome.STALE
    if held == version:
        return Outcome.DUPLICATE
    return None


def merge_upsert(current: Document | None, product: ProductData) -> Document | Outcome:
    """The new document for ``product``, or why the current one stays."""
    if current is not None and (kept := _kept(current, "version", product.version)) is not None:
        return kept
    document = product_document(product)
    if current is not None and int(current.get("stock_version", 0)) > document["stock_version"]:
        document.update({field: current[field] for field in _STOCK_FIELDS if field in current})
    return document


def merge_stock(current: Document | None, stock: StockData) -> Document | Outcome:
    """``current`` with the new stock levels, unless it already has newer ones."""
    levels = {
        "on_hand": stock.on_hand,
        "reserved": stock.reserved,
        "available": stock.available,
        "stock_version": stock.version,
    }
    if current is None:
        # Stock ahead of its product (a retried upsert): keep it, unsearchable, until
        # the product arrives; version 0 lets any product version fill it in.
        return {
            "id": str(stock.product_id),
            "sku": stock.sku,
            "active": False,
            "deleted": False,
            "version": 0,
            **levels,
        }
    kept = _kept(current, "stock_version", stock.version)
    return {**current, **levels} if kept is None else kept


def merge_delete(current: Document | None, deleted: ProductDeletedData) -> Document | Outcome:
    """A tombstone in place of the product (deletions are final in inventory)."""
    if current is not None and current.get("deleted"):
        return Outcome.DUPLICATE
    return {
        "id": str(deleted.id),
        "sku": deleted.sku,
        "active": False,
        "deleted": True,
        "version": int(current.get("version", 0)) if current else 0,
        "stock_version": int(current.get("stock_version", 0)) if current else 0,
    }
