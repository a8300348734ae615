"""``/api/v1/products``: search and product lookup (public, read-only)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Response

from catalog_service import search
from catalog_service.deps import ElasticsearchDep, SearchCacheDep, SearchQueryDep, SettingsDep
from catalog_service.errors import (
    InvalidSearch,
    ProductNotFound,
    SearchUnavailable,
    UnsupportedQuerySyntax,
)
from catalog_service.schemas import ProductDetail, SearchParams, SearchQuery, SearchResponse
from storefront_kit.problems import responses
from storefront_kit.query import query_model_openapi

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/products", tags=["catalog"])


@router.get(
    "/search",
    summary="Search products (typo tolerant) with filters, facets, sorting and paging",
    response_model=SearchResponse,
    responses=responses(InvalidSearch, UnsupportedQuerySyntax, SearchUnavailable),
    openapi_extra=query_model_openapi(SearchQuery),
)
async def search_products(
    query: SearchQueryDep, es: ElasticsearchDep, cache: SearchCacheDep, settings: SettingsDep
) -> Response:
    """Active products matching ``q`` and the filters, with category, brand and price facets."""
    q, size, page = query.q, query.size, query.page
    if q is not None and len(q) > settings.max_query_length:
        raise InvalidSearch(
            f"q may be at most {settings.max_query_length} characters.",
            max_length=settings.max_query_length,
        )
    syntax = search.query_syntax_in(q) if q else None
    if syntax is not None:
        raise UnsupportedQuerySyntax(
            "q is matched as plain words: field queries, wildcards, ranges, regular "
            "expressions, boosts and boolean operators are not supported "
            f"(found {syntax!r}).",
            found=syntax,
        )
    if size > settings.max_page_size:
        raise InvalidSearch(
            f"size may be at most {settings.max_page_size}.", max_size=settings.max_page_size
        )
    if page * size > settings.max_result_window:
        raise InvalidSearch(
            f"page * size may be at most {settings.max_result_window}; narrow the search instead.",
            max_result_window=settings.max_result_window,
        )
    low, high = query.min_price, query.max_price
    if low is not None and high is not None and low > high:
        raise InvalidSearch("min_price must not exceed max_price.")
    params = SearchParams.of(query)
    # The JSON as cached (see SearchCache.get_or_compute); the model documents it.
    body = await cache.get_or_compute(
        params, lambda: search.search_products(es, params=params, settings=settings)
    )
    return Response(content=body, media_type="application/json")


@router.get(
    "/{product_id}",
    summary="One product with its current availability",
    responses=responses(ProductNotFound, SearchUnavailable, 422),
)
async def get_product(
    product_id: Annotated[UUID, Path(description="The product id (UUID).")],
    es: ElasticsearchDep,
    settings: SettingsDep,
) -> ProductDetail:
    """An active product by id; 404 when it does not exist, was deleted or is inactive."""
    return await search.get_product(es, product_id=product_id, settings=settings)
