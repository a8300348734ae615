"""Admin product use cases: create, read, list, optimistic update, soft delete, stock."""

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service import events, repository
from inventory_service.errors import (
    PreconditionFailed,
    ProductNotFound,
    SkuTaken,
    StockBelowReserved,
)
from inventory_service.events import StockData
from inventory_service.models import Product, StockAdjustment
from inventory_service.repository import ProductFilter
from inventory_service.schemas import (
    ExportPage,
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductPatch,
    StockAdjust,
    StockLevel,
    StockOut,
)
from storefront_kit.audit import AUDIT_STREAM, AuditContext, audit_event

__all__ = [
    "adjust_stock",
    "create_product",
    "delete_product",
    "export_products",
    "get_product",
    "get_product_by_sku",
    "list_adjustments",
    "list_products",
    "update_product",
]

INITIAL_STOCK_REASON = "initial stock"
#: What an audit entry shows of a product (the fields staff edit, and its version).
_AUDITED_FIELDS = (
    "sku",
    "name",
    "description",
    "brand",
    "category",
    "attributes",
    "price",
    "currency",
    "images",
    "active",
    "version",
)


def _fields(product: Product, names: Iterable[str]) -> dict[str, Any]:
    return {name: getattr(product, name) for name in names}


def _audit(
    session: AsyncSession,
    audit: AuditContext,
    action: str,
    product_id: UUID,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    """Stage the audit entry of an action on a product in the outbox, in the transaction
    of the action it records."""
    entry = audit.entry(
        action=action, target_type="product", target_id=product_id, before=before, after=after
    )
    repository.add_event(session, AUDIT_STREAM, audit_event(entry))


def product_out(product: Product, stock: StockData) -> ProductOut:
    """The public representation of a product with its live stock."""
    return ProductOut(
        id=product.id,
        sku=product.sku,
        name=product.name,
        description=product.description,
        brand=product.brand,
        category=product.category,
        attributes=product.attributes,
        price=product.price,
        currency=product.currency,
        images=product.images,
        active=product.active,
        created_at=product.created_at,
        updated_at=product.updated_at,
        version=product.version,
        stock=StockLevel(on_hand=stock.on_hand, reserved=stock.reserved, available=stock.available),
    )


async def create_product(
    session: AsyncSession, *, data: ProductCreate, audit: AuditContext
) -> ProductOut:
    """Create a product and its stock row (audited); ``sku_taken`` if the sku exists."""
    actor = audit.actor_id
    values = data.model_dump(exclude={"initial_stock"})
    product = await repository.insert_product(session, values=values)
    if product is None:
        raise SkuTaken(f"A product with sku {data.sku} already exists.", sku=data.sku)
    stock = await repository.insert_stock(
        session, sku=product.sku, product_id=product.id, on_hand=data.initial_stock
    )
    if data.initial_stock:
        repository.add_adjustment(
            session, stock=stock, delta=data.initial_stock, reason=INITIAL_STOCK_REASON, actor=actor
        )
    out = product_out(product, stock)
    repository.add_event(session, events.STREAM, events.product_upserted(out))
    repository.add_event(session, events.STREAM, events.stock_changed(stock))
    _audit(
        session,
        audit,
        "product.created",
        product.id,
        after={**_fields(product, _AUDITED_FIELDS), "initial_stock": data.initial_stock},
    )
    return out


async def get_product(session: AsyncSession, *, product_id: UUID) -> ProductOut:
    found = await repository.get_product(session, product_id)
    if found is None:
        raise ProductNotFound(f"No product {product_id}.")
    return product_out(*found)


async def get_product_by_sku(session: AsyncSession, *, sku: str) -> ProductOut:
    found = await repository.get_product_by_sku(session, sku)
    if found is None:
        raise ProductNotFound(f"No product with sku {sku}.", sku=sku)
    return product_out(*found)


async def list_products(
    session: AsyncSession,
    *,
    q: str | None = None,
    category: str | None = None,
    brand: str | None = None,
    active: bool | None = None,
    page: int,
    size: int,
) -> ProductPage:
    """Live products, newest first; ``q`` matches name or sku, the others exactly."""
    filters = ProductFilter(q=q, category=category, brand=brand, active=active)
    rows, total = await repository.list_products(
        session, filters=filters, offset=(page - 1) * size, limit=size
    )
    return ProductPage(items=[product_out(*row) for row in rows], total=total, page=page, size=size)


async def export_products(session: AsyncSession, *, after: str | None, limit: int) -> ExportPage:
    rows = await repository.export_products(session, after=after, limit=limit)
    items = [product_out(*row) for row in rows]
    next_after = items[-1].sku if len(items) == limit else None
    return ExportPage(items=items, next_after=next_after)


async def _missing_or_stale(session: AsyncSession, product_id: UUID) -> Exception:
    if await repository.product_exists(session, product_id):
        return PreconditionFailed(
            "The product changed since you read it; fetch it again and retry with its ETag."
        )
    return ProductNotFound(f"No product {product_id}.")


async def update_product(
    session: AsyncSession,
    *,
    product_id: UUID,
    expected_versions: Collection[int] | None,
    patch: ProductPatch,
    audit: AuditContext,
) -> ProductOut:
    """Optimistic partial update: applies only at an expected version (412 otherwise).

    ``expected_versions`` is ``None`` for ``If-Match: *`` (any current version). The
    audit entry holds the changed fields before and after (the row is locked to read
    them, so they are exactly what this update replaced).
    """
    changes = patch.changes()
    current = await repository.lock_product(session, product_id)
    if current is None:
        raise ProductNotFound(f"No product {product_id}.")
    before = _fields(current, [*sorted(changes), "version"])
    product = await repository.update_product(
        session,
        product_id=product_id,
        expected_versions=expected_versions,
        changes=changes,
    )
    if product is None:
        raise await _missing_or_stale(session, product_id)
    found = await repository.get_product(session, product_id)
    assert found is not None  # updated in this very transaction
    out = product_out(product, found[1])
    repository.add_event(session, events.STREAM, events.product_upserted(out))
    _audit(
        session,
        audit,
        "product.updated",
        product_id,
        before=before,
        after=_fields(product, [*sorted(changes), "version"]),
    )
    return out


async def delete_product(
    session: AsyncSession,
    *,
    product_id: UUID,
    expected_versions: Collection[int] | None,
    audit: AuditContext,
) -> None:
    """Soft delete (audited): the product stops selling, its sku and history stay."""
    current = await repository.lock_product(session, product_id)
    if current is None:
        raise ProductNotFound(f"No product {product_id}.")
    before = {**_fields(current, ("sku", "active", "version")), "deleted_at": None}
    product = await repository.soft_delete_product(
        session, product_id=product_id, expected_versions=expected_versions
    )
    if product is None:
        raise await _missing_or_stale(session, product_id)
    repository.add_event(
        session, events.STREAM, events.product_deleted(product_id=product.id, sku=product.sku)
    )
    _audit(
        session,
        audit,
        "product.deleted",
        product_id,
        before=before,
        after=_fields(product, ("sku", "active", "version", "deleted_at")),
    )


async def adjust_stock(
    session: AsyncSession, *, product_id: UUID, change: StockAdjust, audit: AuditContext
) -> StockOut:
    """Add or remove units on hand (audited); never below what is reserved.

    Inventory's own ``stock_adjustment`` row (the per-product trail) and the platform
    audit entry are written in the same transaction, with the same actor.
    """
    found = await repository.get_product(session, product_id)
    if found is None:
        raise ProductNotFound(f"No product {product_id}.")
    product, _ = found
    stock = await repository.adjust_stock(
        session,
        sku=product.sku,
        delta=change.delta,
        stream=events.STREAM,
        event=events.stock_changed(),
    )
    if stock is None:
        current = await repository.get_product(session, product_id)
        level = current[1] if current else None
        raise StockBelowReserved(
            "The adjustment would leave less on hand than is reserved.",
            sku=product.sku,
            on_hand=level.on_hand if level else None,
            reserved=level.reserved if level else None,
        )
    repository.add_adjustment(
        session, stock=stock, delta=change.delta, reason=change.reason, actor=audit.actor_id
    )
    _audit(
        session,
        audit,
        "stock.adjusted",
        product_id,
        before={"on_hand": stock.on_hand - change.delta, "reserved": stock.reserved},
        after={
            "on_hand": stock.on_hand,
            "reserved": stock.reserved,
            "sku": stock.sku,
            "delta": change.delta,
            "reason": change.reason,
        },
    )
    return StockOut.model_validate(stock)


async def list_adjustments(
    session: AsyncSession, *, product_id: UUID, limit: int
) -> Sequence[StockAdjustment]:
    found = await repository.get_product(session, product_id)
    if found is None:
        raise ProductNotFound(f"No product {product_id}.")
    return await repository.list_adjustments(session, sku=found[0].sku, limit=limit)
