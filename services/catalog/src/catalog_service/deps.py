"""Annotated dependency aliases: what an endpoint may ask for."""

from typing import Annotated

from fastapi import Depends, Request

from catalog_service.schemas import SearchQuery
from catalog_service.service.search import ProductSearch
from catalog_service.state import CatalogState
from storefront_kit.forwarded import client_ip
from storefront_kit.query import query_model
from storefront_kit.state import service_state, state_dependency, state_part

__all__ = ["ProductSearchDep", "SearchQueryDep", "SearchRateLimit", "StateDep"]


#: Everything catalog's lifespan built, typed (storefront_kit.state).
StateDep = Annotated[CatalogState, Depends(state_dependency(CatalogState))]


# ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool.
# One dependency hands over every client a search needs: FastAPI resolves each
# dependency anew on every request, which cost a cached search more than its Redis
# round trip did (so these read the state themselves, or through ``state_part``,
# rather than through StateDep).
async def _search_rate_limit(request: Request) -> None:
    """Count the search against the client address's budget (429 when it is used up)."""
    state = service_state(request, CatalogState)
    forwarded = state.settings.platform.forwarded_allow_ips
    ip = client_ip(request, forwarded_allow_ips=forwarded)
    await state.rate_limiter.hit("search_ip", ip, scope="ip")


ProductSearchDep = Annotated[
    ProductSearch, Depends(state_part(CatalogState, lambda state: state.product_search))
]
#: Put in a route's ``dependencies=``: the search's per-address rate limit.
SearchRateLimit = Depends(_search_rate_limit)
# The whole query string as one model: see storefront_kit.query for why.
SearchQueryDep = Annotated[SearchQuery, Depends(query_model(SearchQuery))]
