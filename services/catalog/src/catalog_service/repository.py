"""Every read and write of product documents, with inventory's versions as guards.

A document carries two versions from inventory: ``version`` (the product row) and
``stock_version`` (the stock row). A write first reads the document, lets a pure
``merge`` decide what the new document is (or that the event is stale), then writes
it only if nobody wrote in between (``if_seq_no``/``if_primary_term``; a lost race
reads again). So an older event never overwrites a newer document, whatever order
events arrive in, and no script is needed (the integ-test server has no painless).

Deletion is final in inventory (soft delete, sku kept), so a delete leaves a tombstone
(``deleted: true``) that later, older upserts cannot resurrect; a reindex drops them.

The read before a write is a realtime GET, and on a document changed since the last
refresh Elasticsearch refreshes the shard to answer it: about half of the cost of
every write to a hot product. A writer that passes :class:`LastWrites` skips it for
the documents it wrote itself: it merges onto what it wrote and makes the write
conditional on that write's ``seq_no``, so anyone else's write in between (another
replica, a reindex) is a conflict that falls back to reading.
"""

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError

from catalog_service.clients.elasticsearch import is_index_missing
from catalog_service.domain.documents import (
    Document,
    Outcome,
    merge_delete,
    merge_stock,
    merge_upsert,
)
from catalog_service.errors import ConcurrentUpdate
from catalog_service.events import ProductData, ProductDeletedData, StockData

__all__ = [
    "Change",
    "LastWrites",
    "apply_change",
    "get_document",
]

_MAX_RACES = 10


@dataclass(frozen=True)
class _Current:
    source: Document
    index: str
    seq_no: int
    primary_term: int


Merge = Callable[[Document | None], "Document | Outcome"]


class LastWrites:
    """The newest document this process wrote, per (index or alias written to, id).

    Bounded (least recently written dropped first). Entries are only a shortcut: a
    stale one costs a conflict and a read, never a lost or misplaced write.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, str], _Current] = OrderedDict()

    def get(self, index: str, doc_id: str) -> "_Current | None":
        return self._entries.get((index, doc_id))

    def put(self, index: str, doc_id: str, current: "_Current") -> None:
        self._entries[(index, doc_id)] = current
        self._entries.move_to_end((index, doc_id))
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def forget(self, index: str, doc_id: str) -> None:
        self._entries.pop((index, doc_id), None)

    def clear(self) -> None:
        self._entries.clear()


async def _read(es: AsyncElasticsearch, index: str, doc_id: str) -> _Current | None:
    try:
        response = await es.get(index=index, id=doc_id)
    except NotFoundError as exc:
        if is_index_missing(exc):
            raise
        return None
    return _Current(
        source=response["_source"],
        index=response["_index"],
        seq_no=response["_seq_no"],
        primary_term=response["_primary_term"],
    )


async def _guarded_write(
    es: AsyncElasticsearch,
    *,
    index: str,
    doc_id: str,
    merge: Merge,
    refresh: bool,
    last_writes: LastWrites | None,
) -> Outcome:
    known = last_writes.get(index, doc_id) if last_writes is not None else None
    for _ in range(_MAX_RACES):
        current = known if known is not None else await _read(es, index, doc_id)
        document = merge(current.source if current else None)
        if isinstance(document, Outcome):
            # From a remembered write: the document can only have moved forward since.
            return document
        try:
            if current is None:
                written = await es.index(
                    index=index, id=doc_id, document=document, op_type="create", refresh=refresh
                )
            else:
                written = await es.index(
                    index=current.index,
                    id=doc_id,
                    document=document,
                    if_seq_no=current.seq_no,
                    if_primary_term=current.primary_term,
                    refresh=refresh,
                )
        except ConflictError:
            known = None  # someone wrote in between: decide again on what is there now
            continue
        except NotFoundError as exc:
            if known is not None and is_index_missing(exc):
                known = None  # the remembered index is gone (a reindex swapped it): read
                continue
            if last_writes is not None:
                last_writes.forget(index, doc_id)
            raise
        except BaseException:
            if last_writes is not None:
                last_writes.forget(index, doc_id)
            raise
        if last_writes is not None:
            last_writes.put(
                index,
                doc_id,
                _Current(
                    source=document,
                    index=written["_index"],
                    seq_no=written["_seq_no"],
                    primary_term=written["_primary_term"],
                ),
            )
        return Outcome.APPLIED
    if last_writes is not None:
        last_writes.forget(index, doc_id)
    raise ConcurrentUpdate(f"Document {doc_id} kept changing during the write.")


async def _write_all(
    es: AsyncElasticsearch,
    targets: Sequence[str],
    doc_id: str,
    merge: Merge,
    refresh: bool,
    last_writes: LastWrites | None,
) -> Outcome:
    # The first target is the alias (what searches see); others are a reindex in progress,
    # whose index may vanish under us when that reindex fails or finishes.
    primary, *others = targets
    outcome = await _guarded_write(
        es, index=primary, doc_id=doc_id, merge=merge, refresh=refresh, last_writes=last_writes
    )
    for target in others:
        try:
            await _guarded_write(
                es,
                index=target,
                doc_id=doc_id,
                merge=merge,
                refresh=refresh,
                last_writes=last_writes,
            )
        except NotFoundError as exc:
            if not is_index_missing(exc):
                raise
    return outcome


#: What the listener and the reindex write: a product, its stock levels, or its deletion.
Change = ProductData | StockData | ProductDeletedData


def _merge_of(change: Change) -> tuple[str, Merge]:
    """The document a change writes to, and how it merges onto what is there."""
    if isinstance(change, StockData):
        return str(change.product_id), lambda current: merge_stock(current, change)
    if isinstance(change, ProductDeletedData):
        return str(change.id), lambda current: merge_delete(current, change)
    return str(change.id), lambda current: merge_upsert(current, change)


async def apply_change(
    es: AsyncElasticsearch,
    targets: Sequence[str],
    change: Change,
    *,
    refresh: bool = True,
    last_writes: LastWrites | None = None,
) -> Outcome:
    """Write ``change`` unless a document at the same or a newer version is there.

    A product is written whole, stock levels update its stock fields, a deletion
    replaces it with a tombstone.
    """
    doc_id, merge = _merge_of(change)
    return await _write_all(es, targets, doc_id, merge, refresh, last_writes)


async def get_document(es: AsyncElasticsearch, alias: str, product_id: UUID) -> Document | None:
    """The indexed document of ``product_id`` (any state), or None."""
    current = await _read(es, alias, str(product_id))
    return current.source if current else None
