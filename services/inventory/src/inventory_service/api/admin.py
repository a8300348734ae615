"""``/api/v1/admin/products``: product CRUD and stock adjustments (admin writes, staff reads)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response, status

from inventory_service.api.conditional import etag, expected_versions, required_expected_versions
from inventory_service.deps import AdminAudit, ProductPaging, SessionDep, StaffUser
from inventory_service.errors import (
    PreconditionFailed,
    PreconditionRequired,
    ProductNotFound,
    SkuTaken,
    StockBelowReserved,
)
from inventory_service.schemas import (
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductPatch,
    StockAdjust,
    StockAdjustmentOut,
    StockOut,
)
from inventory_service.service import products
from storefront_kit.problems import responses

__all__ = ["router"]

PREFIX = "/api/v1/admin/products"
router = APIRouter(prefix=PREFIX, tags=["admin: products"], responses=responses(401, 403))

IfMatch = Annotated[
    str | None,
    Header(
        max_length=1024,
        description='The ETag from the last GET (`"<version>"`); `*` matches any version.',
    ),
]
SearchText = Annotated[str | None, Query(min_length=1, max_length=100)]
Label = Annotated[str | None, Query(min_length=1, max_length=100)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=responses(SkuTaken, 422),
)
async def create_product(
    body: ProductCreate, audit: AdminAudit, session: SessionDep, response: Response
) -> ProductOut:
    """Create a product with its initial stock (audited)."""
    product = await products.create_product(session, data=body, audit=audit)
    response.headers["Location"] = f"{PREFIX}/{product.id}"
    response.headers["ETag"] = etag(product.version)
    return product


@router.get("", responses=responses(422))
async def list_products(
    _staff: StaffUser,
    session: SessionDep,
    paging: ProductPaging,
    q: SearchText = None,
    category: Label = None,
    brand: Label = None,
    active: bool | None = None,
) -> ProductPage:
    """Live products, newest first; ``q`` matches name or sku."""
    return await products.list_products(
        session,
        q=q,
        category=category,
        brand=brand,
        active=active,
        page=paging.page,
        size=paging.size,
    )


@router.get("/{product_id}", responses=responses(ProductNotFound))
async def get_product(
    product_id: UUID, _staff: StaffUser, session: SessionDep, response: Response
) -> ProductOut:
    """One product with its stock; the ``ETag`` is what ``PATCH`` needs in ``If-Match``."""
    product = await products.get_product(session, product_id=product_id)
    response.headers["ETag"] = etag(product.version)
    return product


@router.patch(
    "/{product_id}",
    responses=responses(ProductNotFound, PreconditionFailed, PreconditionRequired, 422),
)
async def update_product(
    product_id: UUID,
    body: ProductPatch,
    audit: AdminAudit,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> ProductOut:
    """Change some fields (audited); requires ``If-Match`` (428 without, 412 when stale)."""
    versions = required_expected_versions(if_match)
    product = await products.update_product(
        session, product_id=product_id, expected_versions=versions, patch=body, audit=audit
    )
    response.headers["ETag"] = etag(product.version)
    return product


@router.delete(
    "/{product_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(ProductNotFound, PreconditionFailed),
)
async def delete_product(
    product_id: UUID, audit: AdminAudit, session: SessionDep, if_match: IfMatch = None
) -> Response:
    """Soft delete (audited; ``If-Match`` optional): it stops selling, its sku stays taken."""
    await products.delete_product(
        session, product_id=product_id, expected_versions=expected_versions(if_match), audit=audit
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{product_id}/stock",
    responses=responses(ProductNotFound, StockBelowReserved, 422),
)
async def adjust_stock(
    product_id: UUID, body: StockAdjust, audit: AdminAudit, session: SessionDep
) -> StockOut:
    """Add (or with a negative ``delta`` remove) units on hand, with a reason (audited)."""
    return await products.adjust_stock(session, product_id=product_id, change=body, audit=audit)


@router.get("/{product_id}/stock/adjustments", responses=responses(ProductNotFound))
async def list_stock_adjustments(
    product_id: UUID,
    _staff: StaffUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[StockAdjustmentOut]:
    """The audit trail of manual stock changes, newest first."""
    rows = await products.list_adjustments(session, product_id=product_id, limit=limit)
    return [StockAdjustmentOut.model_validate(row) for row in rows]
