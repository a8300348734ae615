"""Errors of the catalog service; each carries its HTTP status (see storefront_kit.errors).

Catalog-specific problems (stable ``code`` in parentheses)::

    NotFound 404
    └── ProductNotFound        (product_not_found)   absent, deleted or inactive
    UnprocessableEntity 422
    └── InvalidSearch          (validation_error)    limits that come from settings
    ServiceUnavailable 503
    └── SearchUnavailable      (search_unavailable)  Elasticsearch down, slow or failing
    AppError 500
    └── ConcurrentUpdate       (concurrent_update)   a document kept changing under a write
"""

from typing import Any

from storefront_kit.errors import (
    AppError,
    Conflict,
    NotFound,
    ServiceUnavailable,
    UnprocessableEntity,
)

__all__ = [
    "ConcurrentUpdate",
    "Conflict",
    "InvalidSearch",
    "ProductNotFound",
    "SearchUnavailable",
]


class ProductNotFound(NotFound):
    code = "product_not_found"


class InvalidSearch(UnprocessableEntity):
    """A search parameter within its type but beyond a limit or inconsistent with another."""

    code = "validation_error"


class UnsupportedQuerySyntax(UnprocessableEntity):
    """``q`` uses Elasticsearch's query language; search text is matched as words only."""

    code = "unsupported_query_syntax"


class SearchUnavailable(ServiceUnavailable):
    """Elasticsearch cannot answer now; never carries Elasticsearch's own message."""

    code = "search_unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1, **kwargs: Any) -> None:
        super().__init__(
            detail or "Search is temporarily unavailable; retry shortly.",
            headers={"Retry-After": str(max(1, retry_after))},
            **kwargs,
        )


class ConcurrentUpdate(AppError):
    """An optimistic write lost too many races in a row (the event is retried)."""

    code = "concurrent_update"
