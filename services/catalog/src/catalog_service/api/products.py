"""``/api/v1/products``: search and product lookup (public, read-only)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Response

from catalog_service.deps import ProductSearchDep, SearchQueryDep, SearchRateLimit
from catalog_service.errors import (
    InvalidSearch,
    ProductNotFound,
    SearchUnavailable,
    UnsupportedQuerySyntax,
)
from catalog_service.schemas import ProductDetail, SearchQuery, SearchResponse
from storefront_kit.problems import responses
from storefront_kit.query import query_model_openapi
from storefront_kit.rate_limits import RateLimited, RateLimitUnavailable

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/products", tags=["catalog"])


@router.get(
    "/search",
    summary="Search products (typo tolerant) with filters, facets, sorting and paging",
    response_model=SearchResponse,
    responses=responses(
        InvalidSearch,
        UnsupportedQuerySyntax,
        SearchUnavailable,
        RateLimited,
        RateLimitUnavailable,
    ),
    openapi_extra=query_model_openapi(SearchQuery),
    dependencies=[SearchRateLimit],
)
async def search_products(query: SearchQueryDep, catalog: ProductSearchDep) -> Response:
    """Active products matching ``q`` and the filters, with category, brand and price facets."""
    # The JSON as cached (see SearchCache.get_or_compute); the model documents it.
    return Response(content=await catalog.search(query), media_type="application/json")


@router.get(
    "/{product_id}",
    summary="One product with its current availability",
    responses=responses(ProductNotFound, SearchUnavailable, 422),
)
async def get_product(
    product_id: Annotated[UUID, Path(description="The product id (UUID).")],
    catalog: ProductSearchDep,
) -> ProductDetail:
    """An active product by id; 404 when it does not exist, was deleted or is inactive."""
    return await catalog.product(product_id)
