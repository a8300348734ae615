"""The products index: explicit mapping, created behind an alias, swapped atomically.

Searches and writes always name the alias (``products``); the concrete index is
``products-<UTC timestamp>``. A full reindex fills a fresh index and moves the alias
in one ``_aliases`` request, so a search sees either the old or the new index, never
none. Only what the integ-test distribution's server core ships is used: the
``standard`` analyzer, keyword fields, no scripts.
"""

import asyncio
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError

from catalog_service.settings import CatalogSettings
from storefront_kit.logging import get_logger

__all__ = [
    "MAPPING",
    "create_index",
    "current_indices",
    "delete_indices",
    "ensure_index",
    "finish_bulk_load",
    "new_index_name",
    "swap_alias",
]

logger = get_logger(__name__)

_TEXT_WITH_KEYWORD: dict[str, Any] = {
    "type": "text",
    "analyzer": "standard",
    # Exact value, original case: filters (case-insensitive term) and facet buckets.
    "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
}

#: ``dynamic: strict``: a field the code does not know about is an error, not a surprise.
MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": {"type": "keyword"},
        "sku": {"type": "keyword"},
        "name": _TEXT_WITH_KEYWORD,
        "description": {"type": "text", "analyzer": "standard"},
        "brand": _TEXT_WITH_KEYWORD,
        "category": _TEXT_WITH_KEYWORD,
        # Shown, never searched: free-form keys must not grow the mapping.
        "attributes": {"type": "object", "enabled": False},
        "price": {"type": "long"},
        "currency": {"type": "keyword"},
        "images": {"type": "keyword", "index": False, "doc_values": False},
        "active": {"type": "boolean"},
        "deleted": {"type": "boolean"},
        "on_hand": {"type": "integer"},
        "reserved": {"type": "integer"},
        "available": {"type": "integer"},
        "created_at": {"type": "date"},
        "updated_at": {"type": "date"},
        # Inventory's product version and stock version: the out-of-order guards.
        "version": {"type": "long"},
        "stock_version": {"type": "long"},
    },
}


def new_index_name(alias: str) -> str:
    """``<alias>-<UTC timestamp to the microsecond>``: sortable, unique enough per alias."""
    return f"{alias}-{datetime.now(UTC):%Y%m%d%H%M%S%f}"


def _index_settings(settings: CatalogSettings, *, refresh_interval: str) -> dict[str, Any]:
    return {
        "number_of_shards": settings.index_shards,
        "number_of_replicas": settings.index_replicas,
        # Explicit: by default -1, so only the listener's refreshes make segments; any
        # interval set makes an idle shard refresh too (no "search idle" delay).
        "refresh_interval": refresh_interval,
        "max_result_window": settings.max_result_window,
    }


async def create_index(
    es: AsyncElasticsearch,
    name: str,
    settings: CatalogSettings,
    *,
    with_alias: bool = False,
    bulk_load: bool = False,
) -> None:
    """Create ``name`` from the explicit mapping (optionally already behind the alias)."""
    await es.indices.create(
        index=name,
        settings=_index_settings(
            settings, refresh_interval="-1" if bulk_load else settings.index_refresh_interval
        ),
        mappings=MAPPING,
        aliases={settings.index_alias: {}} if with_alias else None,
        wait_for_active_shards="1",
    )


async def finish_bulk_load(es: AsyncElasticsearch, name: str, settings: CatalogSettings) -> None:
    """Restore the refresh interval of a bulk-loaded index and make everything searchable."""
    await es.indices.put_settings(
        index=name, settings={"index": {"refresh_interval": settings.index_refresh_interval}}
    )
    await es.indices.refresh(index=name)


async def current_indices(es: AsyncElasticsearch, alias: str) -> list[str]:
    """The concrete indices behind ``alias`` (sorted; empty when the alias does not exist)."""
    try:
        response = await es.indices.get_alias(name=alias)
    except NotFoundError:
        return []
    return sorted(response.body)


async def delete_indices(es: AsyncElasticsearch, names: list[str]) -> None:
    """Delete ``names``, ignoring those already gone."""
    if names:
        await es.options(ignore_status=404).indices.delete(index=",".join(names))


async def ensure_index(es: AsyncElasticsearch, settings: CatalogSettings) -> str:
    """Create the first index behind the alias if there is none; returns the concrete index.

    Safe when several replicas start at once: each may create an index, after which
    all of them keep the oldest (the smallest name) and drop the others.
    """
    alias = settings.index_alias
    indices = await current_indices(es, alias)
    if not indices:
        name = new_index_name(alias)
        try:
            await create_index(es, name, settings, with_alias=True)
            logger.info("index_created", index=name, alias=alias)
        except ApiError as exc:
            if exc.meta.status != 400 or "resource_already_exists" not in str(exc):
                raise
        indices = await current_indices(es, alias)
    keep, extra = indices[0], indices[1:]
    if extra:
        logger.warning("index_alias_duplicates", alias=alias, keep=keep, dropped=extra)
        await es.indices.update_aliases(
            actions=[{"remove": {"index": name, "alias": alias}} for name in extra]
        )
        await delete_indices(es, extra)
    await es.options(request_timeout=15).cluster.health(
        index=keep, wait_for_status="yellow", timeout="10s"
    )
    await _keep_refresh_interval(es, keep, settings)
    return keep


async def _keep_refresh_interval(
    es: AsyncElasticsearch, name: str, settings: CatalogSettings
) -> None:
    """Give an index made with another refresh interval (an older release's) the one the
    settings ask for, so that a change of it needs no reindex."""
    current = await es.indices.get_settings(index=name, name="index.refresh_interval")
    interval = current.get(name, {}).get("settings", {}).get("index", {}).get("refresh_interval")
    if interval != settings.index_refresh_interval:
        await es.indices.put_settings(
            index=name, settings={"index": {"refresh_interval": settings.index_refresh_interval}}
        )
        logger.info(
            "index_refresh_interval_changed",
            index=name,
            was=interval,
            now=settings.index_refresh_interval,
        )


async def swap_alias(es: AsyncElasticsearch, alias: str, new_index: str) -> list[str]:
    """Point ``alias`` at ``new_index`` only, atomically; returns the indices it left."""
    for attempt in range(3):
        old = [name for name in await current_indices(es, alias) if name != new_index]
        actions: list[dict[str, Any]] = [
            {"remove": {"index": name, "alias": alias}} for name in old
        ]
        actions.append({"add": {"index": new_index, "alias": alias}})
        try:
            await es.indices.update_aliases(actions=actions)
        except NotFoundError:
            # Someone changed the alias between our read and our swap: read again.
            if attempt == 2:
                raise
            await asyncio.sleep(0.1)
            continue
        logger.info("index_alias_swapped", alias=alias, index=new_index, previous=old)
        return old
    raise AssertionError("unreachable")  # pragma: no cover
