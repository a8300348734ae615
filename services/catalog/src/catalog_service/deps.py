"""Annotated dependency aliases: what an endpoint may ask for."""

from typing import Annotated

from fastapi import Depends, Request

from catalog_service.schemas import SearchQuery
from catalog_service.search import ProductSearch
from storefront_kit.query import query_model

__all__ = ["ProductSearchDep", "SearchQueryDep"]


# ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool.
# One dependency hands over every client a search needs: FastAPI resolves each
# dependency anew on every request, which cost a cached search more than its Redis
# round trip did.
async def _product_search(request: Request) -> ProductSearch:
    product_search: ProductSearch = request.app.state.product_search
    return product_search


ProductSearchDep = Annotated[ProductSearch, Depends(_product_search)]
# The whole query string as one model: see storefront_kit.query for why.
SearchQueryDep = Annotated[SearchQuery, Depends(query_model(SearchQuery))]
