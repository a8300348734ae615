"""What catalog's lifespan builds once and every request shares (typed; see
:mod:`storefront_kit.state`)."""

from elasticsearch import AsyncElasticsearch

from catalog_service.service.cache import SearchCache
from catalog_service.service.search import ProductSearch
from catalog_service.settings import CatalogSettings
from storefront_kit.rate_limits import RateLimiter
from storefront_kit.state import ServiceState
from storefront_kit.watch import DependencyWatch

__all__ = ["CatalogState"]


class CatalogState(ServiceState):
    """Catalog's clients: Redis, Elasticsearch, and the search built on them."""

    settings: CatalogSettings
    elasticsearch: AsyncElasticsearch
    search_cache: SearchCache
    product_search: ProductSearch
    rate_limiter: RateLimiter
    #: The background pings that open the Redis and Elasticsearch breakers (none when off).
    watches: tuple[DependencyWatch, ...]
