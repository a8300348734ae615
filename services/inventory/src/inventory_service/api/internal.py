"""``/internal/inventory``: reserve, release and commit for orders; export for catalog.

Only service tokens minted for the ``inventory`` audience get in (docs/design.md §4), and each
route names its callers: the saga's steps are orders' alone, the export catalog's
(reindex); any other service is a 403.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from inventory_service.deps import ExportPaging, SessionDep, SettingsDep
from inventory_service.domain.reservations import LineRequest
from inventory_service.errors import (
    InsufficientStock,
    InvalidRequest,
    MixedCurrency,
    ProductNotFound,
    ProductUnavailable,
    ReservationMismatch,
    ReservationNotFound,
    ReservationStateConflict,
    UnknownSku,
)
from inventory_service.schemas import (
    SKU_PATTERN,
    ExportPage,
    OrderRef,
    ProductOut,
    ReservationOut,
    ReserveRequest,
)
from inventory_service.service import products, reservations
from jwt_core_lib import TokenClaims
from storefront_kit.problems import responses
from storefront_kit.security import allow_callers

__all__ = ["router"]

router = APIRouter(prefix="/internal/inventory", tags=["internal"], responses=responses(401, 403))

#: The order saga holds, sells and gives back stock.
Orders = Annotated[TokenClaims, Depends(allow_callers("orders"))]
#: Catalog's reindex reads every product.
Catalog = Annotated[TokenClaims, Depends(allow_callers("catalog"))]
#: One product's live stock: the services that show or sell products.
CatalogOrOrders = Annotated[TokenClaims, Depends(allow_callers("catalog", "orders"))]

SkuPath = Annotated[str, Path(pattern=SKU_PATTERN, max_length=64)]


@router.post(
    "/reserve",
    responses=responses(
        InsufficientStock,
        ProductUnavailable,
        ReservationMismatch,
        UnknownSku,
        MixedCurrency,
        InvalidRequest,
    ),
)
async def reserve(
    body: ReserveRequest,
    _caller: Orders,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> ReservationOut:
    """Hold every line or none, priced by inventory; a retry of the same request replays."""
    result = await reservations.reserve(
        session,
        order_id=body.order_id,
        lines=[LineRequest(sku=item.sku, qty=item.qty) for item in body.items],
        ttl_s=body.ttl_s,
        default_ttl_s=settings.reservation_default_ttl_s,
        max_ttl_s=settings.reservation_max_ttl_s,
        max_lines=settings.reservation_max_lines,
    )
    if not result.created:
        response.headers["Idempotent-Replayed"] = "true"
    return result.reservation


@router.post("/release", responses=responses(ReservationNotFound, ReservationStateConflict, 422))
async def release(body: OrderRef, _caller: Orders, session: SessionDep) -> ReservationOut:
    """Give the held units back (idempotent; 409 once committed)."""
    return await reservations.release(session, order_id=body.order_id)


@router.post("/commit", responses=responses(ReservationNotFound, ReservationStateConflict, 422))
async def commit(body: OrderRef, _caller: Orders, session: SessionDep) -> ReservationOut:
    """Turn the hold into a sale (idempotent; 409 once released or expired)."""
    return await reservations.commit(session, order_id=body.order_id)


@router.post("/restock", responses=responses(ReservationNotFound, ReservationStateConflict, 422))
async def restock(body: OrderRef, _caller: Orders, session: SessionDep) -> ReservationOut:
    """Put a committed sale's units back on hand (idempotent; 409 unless committed)."""
    return await reservations.restock(session, order_id=body.order_id)


@router.get("/products/export", responses=responses(422))
async def export_products(
    _caller: Catalog,
    session: SessionDep,
    paging: ExportPaging,
    after: Annotated[str | None, Query(pattern=SKU_PATTERN, max_length=64)] = None,
) -> ExportPage:
    """Every live product with its stock, in sku order (for catalog's reindex)."""
    return await products.export_products(session, after=after, limit=paging.size)


@router.get("/products/{sku}", responses=responses(ProductNotFound))
async def get_product_by_sku(
    sku: SkuPath, _caller: CatalogOrOrders, session: SessionDep
) -> ProductOut:
    """One live product with its stock, by sku."""
    return await products.get_product_by_sku(session, sku=sku)
