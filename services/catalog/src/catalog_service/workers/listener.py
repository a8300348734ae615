"""Keeps the index in step with inventory: the ``inventory.events`` consumer.

Delivery is at-least-once (kit :class:`~storefront_kit.events.StreamConsumer`, group
``catalog``). Two layers make redelivery and reordering harmless: processed event ids
are remembered in Redis (``SET`` with a TTL), and every write is guarded by
inventory's versions (:mod:`catalog_service.repository`).

Visibility and the cache: writes do not force a refresh each. The listener refreshes
the indices it wrote, at most once per ``events_flush_ms`` (at once when the last
refresh is older), and then bumps the catalogue version, so a search that starts after
the bump sees the change and no answer cached before it is served again. While a
refresh is pending, new entries are left in the stream until it is due and then read
as one batch, of which only the newest ``stock.changed`` of each product is written:
each carries the product's whole stock, so the older ones are acknowledged unwritten.
A hot product is thus written about twice per refresh interval (a first change at
once, the rest gathered), however often it sells.
Entries are acknowledged as they are written (a write is durable once Elasticsearch
answered it); the one gap, a crash between an acknowledgement and the next bump, is
closed by the bump every listener makes when it starts.

Failure policy: an event that can never apply (bad payload, a document Elasticsearch
rejects) is a :class:`~storefront_kit.events.PoisonMessage`, dead-lettered at once; an
Elasticsearch outage is waited out inside the handler (no attempt is spent, nothing is
dead-lettered because a dependency was down); anything else is retried a bounded
number of times, then dead-lettered by the consumer.
"""

import asyncio
import contextlib
import math
from typing import Any

from elasticsearch import AsyncElasticsearch, BadRequestError
from prometheus_client import Counter
from pydantic import ValidationError
from redis.asyncio import Redis

from catalog_service import repository
from catalog_service.clients import search_index as index
from catalog_service.clients.elasticsearch import is_transient
from catalog_service.domain.documents import Outcome
from catalog_service.events import (
    PRODUCT_DELETED,
    PRODUCT_UPSERTED,
    STOCK_CHANGED,
    ProductData,
    ProductDeletedData,
    StockData,
)
from catalog_service.service.cache import SearchCache
from catalog_service.service.reindex import reindex_target_key
from catalog_service.settings import CatalogSettings
from storefront_kit.events import EventEnvelope, PoisonMessage, StreamConsumer
from storefront_kit.logging import get_logger

__all__ = [
    "EVENTS",
    "CatalogListener",
    "ensure_index_waiting",
    "run_listener",
    "stock_state_key",
]

logger = get_logger(__name__)

EVENTS = Counter(
    "catalog_events", "Inventory events handled, by type and outcome.", ["type", "outcome"]
)


class _FlushingConsumer(StreamConsumer):
    """A stream consumer that makes writes visible at most once per flush interval."""

    def __init__(self, *, listener: "CatalogListener", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._listener = listener

    async def process_batch(self, *, pending: bool = False, block_ms: int | None = None) -> int:
        wait_ms = self._listener.flush_due_in_ms()
        if not pending and block_ms is None and wait_ms is not None:
            # Writes wait for their flush, and nothing written now would be searchable
            # before it: let new entries gather until then and read them as one batch,
            # whose newest stock state per product is written once. Read as they came,
            # a hot product's changes arrived about one per read, each was written, and
            # Elasticsearch took a third of a core under the reservation bench.
            if wait_ms > 0:
                await asyncio.sleep(wait_ms / 1000)
            block_ms = 1
        try:
            return await super().process_batch(pending=pending, block_ms=block_ms)
        finally:
            await self._listener.flush_if_due()

    async def claim_abandoned(self) -> int:
        try:
            return await super().claim_abandoned()
        finally:
            await self._listener.flush_if_due()


def stock_state_key(event: EventEnvelope) -> tuple[str, int] | None:
    """``stock.changed`` carries a product's whole stock: only a batch's newest matters."""
    if event.type != STOCK_CHANGED:
        return None
    try:
        stock = StockData.model_validate(event.data)
    except ValidationError:
        return None  # the handler dead-letters it
    return f"stock:{stock.product_id}", stock.version


class CatalogListener:
    """Applies inventory events to the index (the consumer's handler) and flushes them."""

    def __init__(
        self,
        *,
        es: AsyncElasticsearch,
        redis: Redis,
        settings: CatalogSettings,
        cache: SearchCache,
    ) -> None:
        self.es = es
        self.redis = redis
        self.settings = settings
        self.cache = cache
        self._done_prefix = f"{settings.redis_prefix}:events:done:"
        self._target_key = reindex_target_key(settings.redis_prefix)
        #: Indices written since the last flush, and when that flush was (loop time).
        self._dirty: set[str] = set()
        #: This listener's own writes, so the next write to a hot product need not read it.
        self._last_writes = repository.LastWrites()
        self._reindex_target: str | None = None
        self._flushed_at = -math.inf

    def consumer(self) -> StreamConsumer:
        """The consumer-group reader that feeds :meth:`handle`."""
        settings = self.settings
        return _FlushingConsumer(
            listener=self,
            redis=self.redis,
            stream=settings.events_stream,
            group=settings.events_group,
            consumer=settings.instance_id,
            handler=self.handle,
            max_attempts=settings.events_max_attempts,
            block_ms=settings.events_block_ms,
            batch_size=settings.events_batch_size,
            claim_idle_ms=settings.events_claim_idle_ms,
            state_key=stock_state_key,
            dead_consumer_idle_ms=settings.events_dead_consumer_idle_ms,
        )

    async def handle(self, event: EventEnvelope) -> None:
        """Apply ``event`` once: skipped when already processed, stale writes ignored."""
        done_key = self._done_prefix + str(event.id)
        if await self.redis.exists(done_key):
            EVENTS.labels(type=event.type, outcome="redelivered").inc()
            return
        outcome = await self._apply_waiting_out_outages(event)
        await self.redis.set(done_key, "1", ex=self.settings.events_dedupe_ttl_s)
        EVENTS.labels(type=event.type, outcome=outcome.value if outcome else "ignored").inc()
        await self.flush_if_due()

    def flush_due_in_ms(self) -> int | None:
        """Milliseconds until the pending writes are to be flushed; None if none pend."""
        if not self._dirty:
            return None
        due = self._flushed_at + self.settings.events_flush_ms / 1000
        remaining_s = due - asyncio.get_running_loop().time()
        return math.ceil(remaining_s * 1000) if remaining_s > 0 else 0

    async def flush_if_due(self) -> None:
        """Flush unless the last flush was less than ``events_flush_ms`` ago.

        A refresh per event made Elasticsearch spend more CPU than the rest of the
        platform when one product's stock changed many times a second; at most one
        refresh per interval keeps a lone change immediate and a burst cheap.
        """
        if self.flush_due_in_ms() == 0:
            await self.flush()

    async def flush(self) -> None:
        """Make the writes since the last flush searchable, then invalidate the cache."""
        if not self._dirty:
            return
        indices = ",".join(sorted(self._dirty))
        delay = 0.2
        while True:
            try:
                await self.es.options(ignore_status=404).indices.refresh(
                    index=indices, ignore_unavailable=True
                )
                break
            except Exception as exc:
                if not is_transient(exc):
                    raise
                logger.warning("listener_refresh_waiting", error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        await self.cache.bump()
        self._dirty.clear()
        self._flushed_at = asyncio.get_running_loop().time()

    async def _apply_waiting_out_outages(self, event: EventEnvelope) -> Outcome | None:
        delay = 0.2
        while True:
            try:
                return await self.apply(event)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                logger.warning(
                    "listener_waiting_for_elasticsearch",
                    event_id=str(event.id),
                    error=type(exc).__name__,
                    retry_in_s=delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def apply(self, event: EventEnvelope) -> Outcome | None:
        """Write ``event`` to the index (and to a reindex in progress); None if not ours."""
        try:
            change: repository.Change
            if event.type == PRODUCT_UPSERTED:
                change = ProductData.model_validate(event.data)
            elif event.type == PRODUCT_DELETED:
                change = ProductDeletedData.model_validate(event.data)
            elif event.type == STOCK_CHANGED:
                change = StockData.model_validate(event.data)
            else:
                logger.info("event_type_ignored", event_type=event.type, event_id=str(event.id))
                return None
        except ValidationError as exc:
            raise PoisonMessage(f"{event.type} with an invalid payload: {exc!r}"[:400]) from exc

        targets = [self.settings.index_alias]
        target = await self.redis.get(self._target_key)
        if isinstance(target, bytes):
            target = target.decode()
        if target and target != self.settings.index_alias:
            targets.append(target)
        if target != self._reindex_target:
            # A reindex started or ended: what we remember may be in an index on its way out.
            self._last_writes.clear()
            self._reindex_target = target
        try:
            outcome = await repository.apply_change(
                self.es, targets, change, refresh=False, last_writes=self._last_writes
            )
        except BadRequestError as exc:
            raise PoisonMessage(f"{event.type} rejected by the index: {exc.message}") from exc
        if outcome in (Outcome.APPLIED, Outcome.DUPLICATE):
            # DUPLICATE too: a crash may have come between that write and its flush.
            self._dirty.update(targets)
        return outcome


async def ensure_index_waiting(
    es: AsyncElasticsearch, settings: CatalogSettings, stop: asyncio.Event
) -> bool:
    """Create the index behind the alias, retrying while Elasticsearch is down."""
    delay = 0.5
    while not stop.is_set():
        try:
            await index.ensure_index(es, settings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("index_bootstrap_failed", error=repr(exc)[:300], retry_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, 10.0)
        else:
            return True
    return False


async def run_listener(
    es: AsyncElasticsearch,
    settings: CatalogSettings,
    listener: CatalogListener | None,
    stop: asyncio.Event,
) -> None:
    """Make sure the index exists, then (if given a listener) consume until ``stop``."""
    if not await ensure_index_waiting(es, settings, stop) or listener is None:
        return
    consumer = listener.consumer()
    # A previous run may have acknowledged writes it never flushed (it crashed in between):
    # nothing else makes them searchable (the index has no refresh of its own by default).
    with contextlib.suppress(Exception):
        await es.indices.refresh(index=settings.index_alias)
    with contextlib.suppress(Exception):
        await listener.cache.bump()
    while not stop.is_set():
        try:
            await consumer.run(stop)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The consumer survives Redis outages itself; anything else must not end sync.
            logger.exception("listener_crashed", error=repr(exc)[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
