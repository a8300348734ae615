"""Full reindex: rebuild the read model from inventory into a new index, then swap.

Search keeps serving the old index the whole time. While the new index fills, the
listener writes every event to both (it finds the new index's name under
``<prefix>:reindex:target``), and the export is loaded with ``create`` operations:
a document the listener already wrote is merged through the same version guards
as an event, so neither side can overwrite a newer state with an older one. Then the
alias moves in one atomic ``_aliases`` call, the old index is deleted and the cache
invalidated. One reindex at a time (a Redis lock); a failed one deletes its index.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from elasticsearch import AsyncElasticsearch
from pydantic import ValidationError
from redis.asyncio import Redis, RedisCluster

from catalog_service import repository
from catalog_service.clients import search_index as index
from catalog_service.clients.inventory import export_pages
from catalog_service.domain.documents import product_document
from catalog_service.errors import Conflict
from catalog_service.events import ProductData
from catalog_service.service.cache import catalogue_version_key
from catalog_service.settings import CatalogSettings
from storefront_kit.logging import get_logger

__all__ = [
    "ReindexReport",
    "ReindexRunning",
    "estimated_total",
    "reindex",
    "reindex_from_inventory",
    "reindex_target_key",
]

logger = get_logger(__name__)

_LOCK_TTL_S = 600


def reindex_target_key(prefix: str) -> str:
    """Redis key naming the index a running reindex fills (the listener writes there too)."""
    return f"{prefix}:reindex:target"


class ReindexRunning(Conflict):
    code = "reindex_running"


@dataclass
class ReindexReport:
    """What a reindex did."""

    index: str
    previous: list[str]
    indexed: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


async def _load_page(
    es: AsyncElasticsearch, name: str, items: Sequence[Mapping[str, Any]], report: ReindexReport
) -> None:
    products: list[ProductData] = []
    for item in items:
        try:
            products.append(ProductData.model_validate(item))
        except ValidationError as exc:
            sku = str(item.get("sku", "?"))
            logger.warning("reindex_item_invalid", sku=sku, error=repr(exc)[:300])
            report.skipped.append(sku)
    if not products:
        return
    operations: list[dict[str, Any]] = []
    for product in products:
        operations.append({"create": {"_index": name, "_id": str(product.id)}})
        operations.append(product_document(product))
    response = await es.bulk(operations=operations, refresh=False)
    by_id = {str(p.id): p for p in products}
    for item in response["items"]:
        result = item["create"]
        if result.get("status", 200) < 300:
            report.indexed += 1
        elif result["status"] == 409:
            # The listener got there first (an event during the reindex): merge by version.
            await repository.apply_change(es, [name], by_id[result["_id"]], refresh=False)
            report.indexed += 1
        else:
            sku = by_id[result["_id"]].sku
            logger.warning("reindex_item_rejected", sku=sku, error=str(result.get("error"))[:300])
            report.skipped.append(sku)


async def reindex(
    *,
    es: AsyncElasticsearch,
    redis: Redis,
    settings: CatalogSettings,
    pages: AsyncIterable[Sequence[Mapping[str, Any]]],
    on_page: Callable[[int], None] | None = None,
) -> ReindexReport:
    """Fill a new index from ``pages``, swap the alias to it, drop the old index."""
    prefix = settings.redis_prefix
    lock_key, token = f"{prefix}:reindex:lock", uuid.uuid4().hex
    if not await redis.set(lock_key, token, nx=True, ex=_LOCK_TTL_S):
        raise ReindexRunning("Another reindex is running.")
    started = time.monotonic()
    name = index.new_index_name(settings.index_alias)
    report = ReindexReport(index=name, previous=[])
    target_key = reindex_target_key(prefix)
    try:
        await index.create_index(es, name, settings, bulk_load=True)
        # From here on the listener also writes to the new index.
        await redis.set(target_key, name, ex=_LOCK_TTL_S)
        async for page in pages:
            await _load_page(es, name, page, report)
            await redis.expire(lock_key, _LOCK_TTL_S)
            await redis.expire(target_key, _LOCK_TTL_S)
            if on_page is not None:
                on_page(len(page))
        await index.finish_bulk_load(es, name, settings)
        report.previous = await index.swap_alias(es, settings.index_alias, name)
        # Old indices go before the listener stops writing to the new one by name: a
        # listener writing through a remembered concrete index (repository.LastWrites)
        # must find it gone, not write there and miss the new one.
        await index.delete_indices(es, report.previous)
        await redis.delete(target_key)
        await redis.incr(catalogue_version_key(prefix, cluster=isinstance(redis, RedisCluster)))
    except BaseException:
        logger.exception("reindex_failed", index=name)
        await asyncio.shield(_abandon(es, redis, name, target_key, settings.index_alias))
        raise
    finally:
        if await redis.get(lock_key) == token:
            await redis.delete(lock_key)
    report.seconds = time.monotonic() - started
    logger.info(
        "reindex_done",
        index=name,
        previous=report.previous,
        indexed=report.indexed,
        skipped=len(report.skipped),
        seconds=round(report.seconds, 2),
    )
    return report


async def _abandon(
    es: AsyncElasticsearch, redis: Redis, name: str, target_key: str, alias: str
) -> None:
    try:
        await redis.delete(target_key)
        if name not in await index.current_indices(es, alias):
            await index.delete_indices(es, [name])
    except Exception as exc:
        logger.warning("reindex_cleanup_failed", index=name, error=repr(exc)[:300])


async def reindex_from_inventory(
    *,
    es: AsyncElasticsearch,
    redis: Redis,
    settings: CatalogSettings,
    http: httpx.AsyncClient,
    auth: httpx.Auth | None,
    on_page: Callable[[int], None] | None = None,
) -> ReindexReport:
    """A full reindex from inventory's export (``settings.inventory_url``)."""
    pages = export_pages(
        http, base_url=settings.inventory_url, auth=auth, page_size=settings.reindex_page_size
    )
    return await reindex(es=es, redis=redis, settings=settings, pages=pages, on_page=on_page)


async def estimated_total(es: AsyncElasticsearch, settings: CatalogSettings) -> int | None:
    """How many products the current index holds (the progress bar's first guess)."""
    try:
        response = await es.count(index=settings.index_alias, query={"term": {"deleted": False}})
    except Exception:  # a guess: no index yet, or Elasticsearch busy
        return None
    return int(response["count"]) or None
