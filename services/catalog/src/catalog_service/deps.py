"""Annotated dependency aliases: what an endpoint may ask for."""

from typing import Annotated

from fastapi import Depends, Request

from catalog_service.schemas import SearchQuery
from catalog_service.search import ProductSearch
from catalog_service.settings import CatalogSettings
from storefront_kit.forwarded import client_ip
from storefront_kit.query import query_model
from storefront_kit.rate_limits import RateLimiter

__all__ = ["ProductSearchDep", "SearchQueryDep", "SearchRateLimit"]


# ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool.
# One dependency hands over every client a search needs: FastAPI resolves each
# dependency anew on every request, which cost a cached search more than its Redis
# round trip did.
async def _product_search(request: Request) -> ProductSearch:
    product_search: ProductSearch = request.app.state.product_search
    return product_search


async def _search_rate_limit(request: Request) -> None:
    """Count the search against the client address's budget (429 when it is used up)."""
    settings: CatalogSettings = request.app.state.settings
    limiter: RateLimiter = request.app.state.rate_limiter
    ip = client_ip(request, forwarded_allow_ips=settings.platform.forwarded_allow_ips)
    await limiter.hit("search_ip", ip, scope="ip")


ProductSearchDep = Annotated[ProductSearch, Depends(_product_search)]
#: Put in a route's ``dependencies=``: the search's per-address rate limit.
SearchRateLimit = Depends(_search_rate_limit)
# The whole query string as one model: see storefront_kit.query for why.
SearchQueryDep = Annotated[SearchQuery, Depends(query_model(SearchQuery))]
