"""The Elasticsearch client and the one place its failures become problems.

Nothing Elasticsearch says reaches a caller: connection failures, timeouts, overload
and unexpected API errors all become :class:`~catalog_service.errors.SearchUnavailable`
(503, ``Retry-After: 1``); the original error is logged.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from elasticsearch import (
    ApiError,
    AsyncElasticsearch,
    ConnectionError,
    ConnectionTimeout,
    NotFoundError,
    TransportError,
)
from elasticsearch.serializer import OrjsonSerializer

from catalog_service.errors import SearchUnavailable
from catalog_service.settings import CatalogSettings
from storefront_kit.logging import get_logger

__all__ = [
    "UNAVAILABLE_ERRORS",
    "create_elasticsearch",
    "is_index_missing",
    "is_transient",
    "translate_errors",
]

logger = get_logger(__name__)

#: Failures that say "Elasticsearch cannot answer now", as opposed to "your request is wrong".
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (ConnectionError, ConnectionTimeout)


def create_elasticsearch(settings: CatalogSettings) -> AsyncElasticsearch:
    """A client that gives up quickly: short timeout, few retries, no retry on timeout."""
    return AsyncElasticsearch(
        settings.elasticsearch_url,
        request_timeout=settings.elasticsearch_timeout_s,
        max_retries=settings.elasticsearch_max_retries,
        retry_on_timeout=False,
        retry_on_status=(502, 503, 504),
        # A search answer (hits and facets) is parsed on every uncached search: orjson
        # does it in a fraction of the standard library's time.
        serializer=OrjsonSerializer(),
    )


def is_index_missing(exc: NotFoundError) -> bool:
    """A 404 about the index (or alias) itself, not about one document."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    return isinstance(error, dict) and error.get("type") == "index_not_found_exception"


def is_transient(exc: BaseException) -> bool:
    """Worth retrying later: unreachable, timed out, overloaded or briefly without the index."""
    if isinstance(exc, UNAVAILABLE_ERRORS):
        return True
    if isinstance(exc, NotFoundError):
        return is_index_missing(exc)
    if isinstance(exc, ApiError):
        return exc.meta.status in (429, 502, 503, 504)
    return isinstance(exc, TransportError)


@contextmanager
def translate_errors(operation: str) -> Iterator[None]:
    """Turn any Elasticsearch failure inside the block into a 503 problem."""
    try:
        yield
    except (ApiError, TransportError) as exc:
        status = exc.meta.status if isinstance(exc, ApiError) else None
        logger.warning(
            "elasticsearch_failed",
            operation=operation,
            error=type(exc).__name__,
            status=status,
            message=str(exc)[:300],
        )
        raise SearchUnavailable() from exc
