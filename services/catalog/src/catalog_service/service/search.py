"""Product search and lookup: the query, and hits mapped to the public models.

The user's text only ever goes into ``multi_match`` (analysed as plain text), never
into ``query_string``; text written in Elasticsearch's query language is refused
(422) before it gets here, so it is never executed nor silently searched as punctuation.
Facets describe the current result set (every filter applied), so their counts add
up to ``total``.
"""

import itertools
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

from elasticsearch import AsyncElasticsearch

from catalog_service import repository
from catalog_service.clients.elasticsearch import is_transient, translate_errors
from catalog_service.errors import (
    InvalidSearch,
    ProductNotFound,
    SearchUnavailable,
    UnsupportedQuerySyntax,
)
from catalog_service.schemas import (
    Facets,
    FacetValue,
    PriceBucket,
    ProductDetail,
    SearchItem,
    SearchParams,
    SearchQuery,
    SearchResponse,
    SortKey,
)
from catalog_service.service.cache import SearchCache
from catalog_service.settings import CatalogSettings
from storefront_kit.breaker import Breaker, BreakerOpen
from storefront_kit.paging import check_page_size

__all__ = [
    "ProductSearch",
    "build_search",
    "elasticsearch_breaker",
    "get_product",
    "search_products",
    "to_response",
]

T = TypeVar("T")

#: Boosts: a hit in the name matters most, then the brand.
TEXT_FIELDS = ["name^3", "brand^2", "category", "description"]

_SOURCE = ["id", "sku", "name", "brand", "category", "price", "currency", "images", "available"]

_SORTS: dict[SortKey, list[Any]] = {
    # The sku tie-breaker keeps paging stable when scores or prices are equal.
    "relevance": ["_score", {"created_at": {"order": "desc"}}, {"sku": "asc"}],
    "price_asc": [{"price": "asc"}, {"sku": "asc"}],
    "price_desc": [{"price": "desc"}, {"sku": "asc"}],
    "newest": [{"created_at": {"order": "desc"}}, {"sku": "asc"}],
}


#: Elasticsearch (Lucene) query-language syntax. Search text is matched as words, never
#: parsed as a query, so this syntax could only be searched for as literal punctuation:
#: it is refused with a 422 that says so, rather than answered with surprising results.
#: Ordinary punctuation of product names and questions ("usb-c", "(white)", quotes,
#: "10:30") stays allowed.
_QUERY_SYNTAX = re.compile(
    r"""
    \b[A-Za-z_][\w.]*:\S      # field:value
    | \*                        # wildcards (and *:* match-all)
    | ~                         # fuzziness and proximity
    | \^\d                      # boosts
    | [\[\]{}]                   # ranges, JSON bodies
    | &&|\|\|                    # boolean operators
    | \b(?:AND|OR|NOT)\b        # boolean operators as Lucene spells them
    | (?:^|\s)/[^/\s][^/]*/     # regular expressions
    | \\                        # escapes
    | \b_exists_\b
    """,
    re.VERBOSE,
)


def query_syntax_in(text: str) -> str | None:
    """The first fragment of ``text`` that is query-language syntax, if any."""
    match = _QUERY_SYNTAX.search(text)
    return match.group(0).strip() if match else None


def _price_ranges(bounds: list[int]) -> list[dict[str, Any]]:
    edges: list[int | None] = [None, *bounds, None]
    ranges = []
    for low, high in itertools.pairwise(edges):
        key = f"{'*' if low is None else low}-{'*' if high is None else high}"
        ranges.append(
            {"key": key}
            | ({} if low is None else {"from": low})
            | ({} if high is None else {"to": high})
        )
    return ranges


def build_search(params: SearchParams, settings: CatalogSettings) -> dict[str, Any]:
    """The search request body for ``params``."""
    filters: list[dict[str, Any]] = [{"term": {"active": True}}]
    if params.category:
        filters.append(
            {"term": {"category.keyword": {"value": params.category, "case_insensitive": True}}}
        )
    if params.brand:
        filters.append(
            {"term": {"brand.keyword": {"value": params.brand, "case_insensitive": True}}}
        )
    if params.min_price is not None or params.max_price is not None:
        bounds = {"gte": params.min_price, "lte": params.max_price}
        filters.append({"range": {"price": {k: v for k, v in bounds.items() if v is not None}}})
    if params.in_stock is True:
        filters.append({"range": {"available": {"gt": 0}}})
    elif params.in_stock is False:
        filters.append({"range": {"available": {"lte": 0}}})

    query: dict[str, Any] = {"bool": {"filter": filters}}
    if params.q:
        query["bool"]["must"] = [
            {
                "multi_match": {
                    "query": params.q,
                    "fields": TEXT_FIELDS,
                    "type": "best_fields",
                    "fuzziness": "AUTO",
                    "prefix_length": 1,
                    "max_expansions": 50,
                    "lenient": True,
                }
            }
        ]
        # Exact phrases rank above fuzzy matches.
        query["bool"]["should"] = [
            {"multi_match": {"query": params.q, "fields": TEXT_FIELDS, "type": "phrase"}}
        ]

    return {
        "query": query,
        "sort": _SORTS[params.sort],
        "track_scores": params.sort == "relevance" and bool(params.q),
        "track_total_hits": True,
        "from": (params.page - 1) * params.size,
        "size": params.size,
        "_source": _SOURCE,
        "aggs": {
            "category": {"terms": {"field": "category.keyword", "size": settings.facet_size}},
            "brand": {"terms": {"field": "brand.keyword", "size": settings.facet_size}},
            "price": {
                "range": {"field": "price", "ranges": _price_ranges(settings.price_facet_bounds)}
            },
        },
    }


def _item(hit: dict[str, Any], *, with_score: bool) -> SearchItem:
    source = hit["_source"]
    images = source.get("images") or []
    available = int(source.get("available") or 0)
    return SearchItem(
        id=source["id"],
        sku=source["sku"],
        name=source["name"],
        brand=source["brand"],
        category=source["category"],
        price=source["price"],
        currency=source["currency"],
        image=images[0] if images else None,
        available=available,
        in_stock=available > 0,
        score=hit.get("_score") if with_score else None,
    )


def _terms(aggregation: dict[str, Any]) -> list[FacetValue]:
    return [FacetValue(value=b["key"], count=b["doc_count"]) for b in aggregation["buckets"]]


def _price(aggregation: dict[str, Any]) -> list[PriceBucket]:
    return [
        PriceBucket(
            key=b["key"],
            from_=int(b["from"]) if "from" in b else None,
            to=int(b["to"]) if "to" in b else None,
            count=b["doc_count"],
        )
        for b in aggregation["buckets"]
    ]


def to_response(body: dict[str, Any], params: SearchParams) -> SearchResponse:
    """An Elasticsearch answer as the public response: map over hits, no per-hit lookups."""
    with_score = params.sort == "relevance" and bool(params.q)
    aggregations = body["aggregations"]
    return SearchResponse(
        items=[_item(hit, with_score=with_score) for hit in body["hits"]["hits"]],
        total=body["hits"]["total"]["value"],
        page=params.page,
        size=params.size,
        facets=Facets(
            category=_terms(aggregations["category"]),
            brand=_terms(aggregations["brand"]),
            price=_price(aggregations["price"]),
        ),
    )


async def search_products(
    es: AsyncElasticsearch, *, params: SearchParams, settings: CatalogSettings
) -> SearchResponse:
    """Run one search against the alias (503 problem when Elasticsearch cannot answer)."""
    with translate_errors("search"):
        response = await es.search(
            index=settings.index_alias,
            body=build_search(params, settings),
            request_cache=True,
        )
    return to_response(response.body, params)


async def get_product(
    es: AsyncElasticsearch, *, product_id: UUID, settings: CatalogSettings
) -> ProductDetail:
    """One active product with its availability; 404 when absent, deleted or inactive."""
    with translate_errors("get_product"):
        document = await repository.get_document(es, settings.index_alias, product_id)
    if document is None or not document.get("active") or document.get("deleted"):
        raise ProductNotFound(f"No product {product_id}.")
    available = int(document.get("available") or 0)
    return ProductDetail(
        id=document["id"],
        sku=document["sku"],
        name=document["name"],
        description=document.get("description", ""),
        brand=document["brand"],
        category=document["category"],
        attributes=document.get("attributes") or {},
        price=document["price"],
        currency=document["currency"],
        images=document.get("images") or [],
        on_hand=int(document.get("on_hand") or 0),
        reserved=int(document.get("reserved") or 0),
        available=available,
        in_stock=available > 0,
        created_at=document["created_at"],
        updated_at=document["updated_at"],
        version=document["version"],
    )


def _elasticsearch_down(exc: BaseException) -> bool:
    # Only "cannot answer now" counts; a refused request is an answer.
    cause = exc.__cause__ if isinstance(exc, SearchUnavailable) else exc
    return cause is not None and is_transient(cause)


def elasticsearch_breaker(settings: CatalogSettings) -> Breaker:
    """The process's breaker for Elasticsearch, with the thresholds of ``settings``."""
    return Breaker(
        "elasticsearch",
        failure_threshold=settings.breaker_failure_threshold,
        reset_timeout_s=settings.breaker_reset_s,
        is_failure=_elasticsearch_down,
    )


class ProductSearch:
    """The catalog's public read side on one set of clients: searches, through the
    cache, and product pages. Built once in the lifespan; every request shares it (one
    dependency per request instead of one per client)."""

    def __init__(
        self,
        es: AsyncElasticsearch,
        *,
        cache: SearchCache,
        settings: CatalogSettings,
        breaker: Breaker | None = None,
    ) -> None:
        self.es = es
        self.cache = cache
        self.settings = settings
        self.breaker = breaker or elasticsearch_breaker(settings)

    def params_of(self, query: SearchQuery) -> SearchParams:
        """``query`` normalised, once it is within this deployment's limits (422 if not)."""
        settings = self.settings
        q, size, page = query.q, query.size, query.page
        if q is not None and len(q) > settings.max_query_length:
            raise InvalidSearch(
                f"q may be at most {settings.max_query_length} characters.",
                max_length=settings.max_query_length,
            )
        syntax = query_syntax_in(q) if q else None
        if syntax is not None:
            raise UnsupportedQuerySyntax(
                "q is matched as plain words: field queries, wildcards, ranges, regular "
                "expressions, boosts and boolean operators are not supported "
                f"(found {syntax!r}).",
                found=syntax,
            )
        # Too large is the kit's one paging problem, as on every other list route.
        check_page_size(size, maximum=settings.max_page_size, name="size")
        if page * size > settings.max_result_window:
            raise InvalidSearch(
                f"page * size may be at most {settings.max_result_window}; "
                "narrow the search instead.",
                max_result_window=settings.max_result_window,
            )
        low, high = query.min_price, query.max_price
        if low is not None and high is not None and low > high:
            raise InvalidSearch("min_price must not exceed max_price.")
        return SearchParams.of(query)

    async def search(self, query: SearchQuery) -> bytes:
        """The answer to ``query`` as JSON (a ``SearchResponse``), cached or computed."""
        params = self.params_of(query)
        return await self.cache.get_or_compute(
            params,
            lambda: self._elasticsearch(
                lambda: search_products(self.es, params=params, settings=self.settings)
            ),
        )

    async def product(self, product_id: UUID) -> ProductDetail:
        """One active product with its availability (404 problem when there is none)."""
        return await self._elasticsearch(
            lambda: get_product(self.es, product_id=product_id, settings=self.settings)
        )

    async def _elasticsearch(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` through the Elasticsearch breaker: a 503 at once while it is open."""
        try:
            return await self.breaker.call(
                call, timeout_s=None, probe_timeout_s=self.settings.breaker_probe_timeout_ms / 1000
            )
        except BreakerOpen as exc:
            raise SearchUnavailable(retry_after=exc.retry_after) from exc
        except TimeoutError as exc:  # the half-open probe's own deadline
            raise SearchUnavailable(retry_after=math.ceil(self.breaker.reset_timeout_s)) from exc
