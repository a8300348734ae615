"""``/api/v1/products``: search and product lookup (public, read-only)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response

from catalog_service import search
from catalog_service.deps import ElasticsearchDep, SearchCacheDep, SettingsDep
from catalog_service.errors import (
    InvalidSearch,
    ProductNotFound,
    SearchUnavailable,
    UnsupportedQuerySyntax,
)
from catalog_service.schemas import ProductDetail, SearchParams, SearchResponse, SortKey
from storefront_kit.problems import responses

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/products", tags=["catalog"])

#: Prices beyond this are certainly a mistake (10 billion in major units).
_MAX_PRICE = 10**12

Text = Annotated[
    str | None,
    Query(max_length=1000, description="Free text; misspellings tolerated.", examples=["iphnoe"]),
]
InStock = Annotated[bool | None, Query(description="Only products with units available.")]
Label = Annotated[str | None, Query(min_length=1, max_length=100)]
Price = Annotated[int | None, Query(ge=0, le=_MAX_PRICE, description="Integer minor units.")]


@router.get(
    "/search",
    summary="Search products (typo tolerant) with filters, facets, sorting and paging",
    response_model=SearchResponse,
    responses=responses(InvalidSearch, UnsupportedQuerySyntax, SearchUnavailable),
)
async def search_products(
    es: ElasticsearchDep,
    cache: SearchCacheDep,
    settings: SettingsDep,
    q: Text = None,
    category: Label = None,
    brand: Label = None,
    min_price: Price = None,
    max_price: Price = None,
    in_stock: InStock = None,
    sort: SortKey = "relevance",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    size: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> Response:
    """Active products matching ``q`` and the filters, with category, brand and price facets."""
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
    if min_price is not None and max_price is not None and min_price > max_price:
        raise InvalidSearch("min_price must not exceed max_price.")
    params = SearchParams.normalised(
        q=q,
        category=category,
        brand=brand,
        min_price=min_price,
        max_price=max_price,
        in_stock=in_stock,
        sort=sort,
        page=page,
        size=size,
    )
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
