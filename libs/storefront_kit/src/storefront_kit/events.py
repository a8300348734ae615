"""Domain events: the envelope, the transactional outbox and Redis Streams on both ends.

Producers write an :class:`EventEnvelope` into their own ``outbox_event`` table in the
same transaction as the change (:func:`add_outbox_event`). :class:`OutboxRelay` moves
unpublished rows to their Redis stream, woken by the commit of a transaction that
staged some (:func:`outbox_staged`) and polling otherwise; a crash between ``XADD``
and the commit that marks a row published yields a duplicate, never a loss. Consumers
read with a consumer group (:class:`StreamConsumer`): at-least-once, acknowledged only
after the handler succeeded, retried a bounded number of times, then parked in a
dead-letter stream.
Handlers must be idempotent (the event ``id`` is the dedupe key). A handler that also
has ``handle_batch`` (:class:`BatchHandler`) gets each read's entries together, so it
can share its round trips among them, with the same per-entry outcomes.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from uuid import UUID

import orjson
from prometheus_client import Counter, Gauge
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from sqlalchemy import (
    DateTime,
    Index,
    String,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from storefront_kit.db import after_commit
from storefront_kit.error_reporting import report_exception
from storefront_kit.ids import new_id
from storefront_kit.logging import get_logger
from storefront_kit.request_id import current_request_id, request_id_var
from storefront_kit.tracing import (
    consume_span,
    consume_spans,
    current_traceparent,
    end_consume_span,
    in_consume_span,
    publish_spans,
)

if TYPE_CHECKING:
    from storefront_kit.settings import OutboxSettingsMixin

__all__ = [
    "BatchEntry",
    "BatchHandler",
    "EventEnvelope",
    "EventHandler",
    "OutboxMixin",
    "OutboxRelay",
    "PoisonMessage",
    "StateKey",
    "StreamConsumer",
    "add_outbox_event",
    "outbox_staged",
]

logger = get_logger(__name__)

#: ``session.info`` key: the wake-ups of the relays that read this sessionmaker's outbox.
_RELAY_WAKERS = "storefront_kit.outbox_relay_wakers"


class EventEnvelope(BaseModel):
    """``{id, type, version, occurred_at, source, request_id, data}`` (docs/design.md §5).

    With tracing on, also ``traceparent``: the W3C trace context of the span the event
    was staged in (re-parented by the outbox relay onto its publish span), which the
    consumer continues. Absent (not serialised) when tracing is off.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: UUID
    type: str
    version: int = 1
    occurred_at: datetime
    source: str
    request_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    traceparent: str | None = Field(
        default=None, max_length=128, exclude_if=lambda value: value is None
    )

    @classmethod
    def new(
        cls, *, type: str, source: str, data: Mapping[str, Any], version: int = 1
    ) -> "EventEnvelope":
        """A new event stamped with a UUIDv7, the time, the current request id and (with
        tracing on) the current trace context."""
        return cls(
            id=new_id(),
            type=type,
            version=version,
            occurred_at=datetime.now(UTC),
            source=source,
            request_id=current_request_id(),
            data=dict(data),
            traceparent=current_traceparent(),
        )

    def to_stream_fields(self) -> dict[str, str]:
        """The Redis stream entry: id and type for quick filtering, the whole envelope as JSON."""
        return {
            "id": str(self.id),
            "type": self.type,
            "envelope": self.model_dump_json(),
        }

    @classmethod
    def from_stream_fields(cls, fields: Mapping[str, str]) -> "EventEnvelope":
        """Parse a stream entry written by :meth:`to_stream_fields`."""
        return cls.model_validate_json(fields["envelope"])


class OutboxMixin:
    """Columns of a service's ``outbox_event`` table (mix into its declarative base)."""

    id: Mapped[UUID] = mapped_column(primary_key=True)
    stream: Mapped[str] = mapped_column(String(100))
    event_type: Mapped[str] = mapped_column(String(100))
    envelope: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        # The relay only ever scans unpublished rows; keep that index tiny. The purge
        # finds published rows by age.
        return (
            Index(
                "ix_outbox_event_unpublished",
                "created_at",
                postgresql_where=text("published_at IS NULL"),
            ),
            Index(
                "ix_outbox_event_published_at",
                "published_at",
                postgresql_where=text("published_at IS NOT NULL"),
            ),
        )


def add_outbox_event(
    session: AsyncSession, model: type[OutboxMixin], *, stream: str, event: EventEnvelope
) -> None:
    """Stage ``event`` in the session's transaction; it is relayed after the commit."""
    row = model()
    row.id = event.id
    row.stream = stream
    row.event_type = event.type
    row.envelope = orjson.loads(event.model_dump_json())
    session.add(row)
    outbox_staged(session)


def outbox_staged(session: AsyncSession) -> None:
    """Wake the session's outbox relay once this transaction commits (it staged events).

    :func:`add_outbox_event` calls it; code that inserts outbox rows with SQL of its
    own calls it too. Without a relay on the session's sessionmaker it does nothing.
    """
    for wake in session.info.get(_RELAY_WAKERS, ()):
        after_commit(session, wake)


class OutboxRelay:
    """Moves committed outbox rows to Redis streams; safe with several replicas running.

    Published rows are kept ``retention_s`` (for audit and replay by hand), then deleted
    in batches at most every ``purge_interval_s``; ``retention_s=None`` (the default: a
    library deletes nothing unless its caller asks) keeps them for good. Unpublished
    rows are never purged, however old. A commit that staged events through one of
    ``sessionmaker``'s sessions wakes the relay at once (:func:`outbox_staged`).
    """

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        model: type[OutboxMixin],
        batch_size: int = 200,
        poll_interval_s: float = 0.1,
        notify_linger_s: float = 0.01,
        stream_maxlen: int = 1_000_000,
        retention_s: float | None = None,
        purge_interval_s: float = 60.0,
        purge_batch_size: int = 1000,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._redis = redis
        self._model = model
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._notify_linger_s = notify_linger_s
        self._stream_maxlen = stream_maxlen
        self._retention_s = retention_s
        self._purge_interval_s = purge_interval_s
        self._purge_batch_size = purge_batch_size
        self._wakeup = asyncio.Event()
        # A round's statement, built once: it claims a batch (SKIP LOCKED lets replicas
        # share the backlog without publishing a row twice) and marks it published in
        # the same statement, as Core rows, not ORM objects (no identity map, no
        # unit-of-work flush, one round trip less; issue 17). The mark only lasts if
        # the round's transaction commits, after the XADDs.
        table: Any = model.__table__  # type: ignore[attr-defined]
        claimed = (
            select(table.c.id)
            .where(table.c.published_at.is_(None))
            .order_by(table.c.created_at, table.c.id)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)
            .cte("claimed")
        )
        self._claim = (
            update(table)
            .where(table.c.id == claimed.c.id)
            .values(published_at=bindparam("now"))
            .returning(table.c.id, table.c.stream, table.c.envelope, table.c.created_at)
        )
        # Sessions of this sessionmaker wake the relay when a transaction that staged
        # events commits (outbox_staged): no service has to remember to, and events
        # leave within milliseconds instead of at the next poll.
        info = dict(sessionmaker.kw.get("info") or {})
        info[_RELAY_WAKERS] = (*info.get(_RELAY_WAKERS, ()), self.notify)
        sessionmaker.configure(info=info)

    @classmethod
    def from_settings(
        cls,
        settings: "OutboxSettingsMixin",
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        model: type[OutboxMixin],
    ) -> "OutboxRelay":
        """A relay publishing as the service's outbox settings say (0 retention: keep all)."""
        return cls(
            sessionmaker=sessionmaker,
            redis=redis,
            model=model,
            batch_size=settings.outbox_batch_size,
            poll_interval_s=settings.outbox_poll_interval_s,
            notify_linger_s=settings.outbox_notify_linger_s,
            stream_maxlen=settings.outbox_stream_maxlen,
            retention_s=settings.outbox_retention_s or None,
        )

    def notify(self) -> None:
        """Wake the relay now instead of at the next poll (a commit just staged events)."""
        self._wakeup.set()

    async def relay_once(self) -> int:
        """Publish one batch of unpublished events; returns how many were published."""
        async with self._sessionmaker() as session, session.begin():
            claimed = await session.execute(
                self._claim, {"limit": self._batch_size, "now": datetime.now(UTC)}
            )
            # RETURNING has no order: published in (created_at, id) order, as claimed.
            rows = sorted(claimed.all(), key=lambda row: (row.created_at, row.id))
            if not rows:
                return 0
            envelopes = [EventEnvelope.model_validate(row.envelope) for row in rows]
            # With tracing on, each event leaves under a publish span of the trace that
            # staged it, and carries that span's context to its consumers.
            outgoing = [
                (row.stream, envelope.type, envelope.traceparent)
                for row, envelope in zip(rows, envelopes, strict=True)
            ]
            with publish_spans(outgoing) as traceparents:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for row, envelope, traceparent in zip(
                        rows, envelopes, traceparents, strict=True
                    ):
                        if traceparent != envelope.traceparent:
                            envelope = envelope.model_copy(update={"traceparent": traceparent})
                        pipe.xadd(
                            row.stream,
                            envelope.to_stream_fields(),  # type: ignore[arg-type]
                            maxlen=self._stream_maxlen,
                            approximate=True,
                        )
                    await pipe.execute()
            # A failed XADD raises: the transaction rolls back and the rows stay
            # unpublished; a crash before the commit publishes them again (a duplicate,
            # never a loss).
            return len(rows)

    async def purge_once(self) -> int:
        """Delete one batch of rows published more than ``retention_s`` ago; how many."""
        if self._retention_s is None:
            return 0
        model: Any = self._model
        cutoff = datetime.now(UTC) - timedelta(seconds=self._retention_s)
        # SKIP LOCKED: replicas purging at once take different rows, never wait on each other.
        expired = (
            select(model.id)
            .where(model.published_at.is_not(None), model.published_at < cutoff)
            .order_by(model.published_at)
            .limit(self._purge_batch_size)
            .with_for_update(skip_locked=True)
        )
        async with self._sessionmaker() as session, session.begin():
            result = await session.execute(delete(model).where(model.id.in_(expired)))
        return int(getattr(result, "rowcount", 0) or 0)

    async def _purge_if_due(self, loop: asyncio.AbstractEventLoop, due: float) -> float:
        """One purge batch when due; when the next purge is due. Never fatal."""
        if self._retention_s is None or loop.time() < due:
            return due
        try:
            deleted = await self.purge_once()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("outbox_purge_failed", error=repr(exc))
            deleted = 0
        # A backlog (say, the first purge after an upgrade) goes one batch per relay
        # turn, between the relaying, instead of holding events back until it is gone.
        if deleted == self._purge_batch_size:
            return loop.time()
        return loop.time() + self._purge_interval_s

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; Redis or database outages are retried, never fatal."""
        backoff = self._poll_interval_s
        loop = asyncio.get_running_loop()
        purge_due = loop.time()
        while not stop.is_set():
            purge_due = await self._purge_if_due(loop, purge_due)
            # Cleared before the round, not after it: a commit that notifies while the
            # round runs (its rows committed after the round's SELECT) gets a round of
            # its own at once instead of waiting for the next poll.
            self._wakeup.clear()
            try:
                published = await self.relay_once()
                backoff = self._poll_interval_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("outbox_relay_failed", error=repr(exc))
                published = 0
                backoff = min(backoff * 2, 5.0)
            if published < self._batch_size and await self._woken(stop, timeout_s=backoff):
                # Woken by a commit: linger so the commits landing meanwhile leave in
                # the same batch (one relay transaction per burst, not per request,
                # which under load cost as much as the requests).
                await asyncio.sleep(self._notify_linger_s)

    async def _woken(self, stop: asyncio.Event, *, timeout_s: float) -> bool:
        """Wait for a commit's wake-up, ``stop`` or the poll interval; True when a
        commit woke the relay (``stop`` ends the wait too: shutdown never waits a poll)."""
        if self._wakeup.is_set() or stop.is_set():
            return not stop.is_set()
        waits = {asyncio.ensure_future(self._wakeup.wait()), asyncio.ensure_future(stop.wait())}
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        return self._wakeup.is_set() and not stop.is_set()


class PoisonMessage(Exception):
    """Raised by a handler for an event that can never succeed: dead-lettered at once."""


EventHandler = Callable[[EventEnvelope], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """One stream entry of a batch given to :meth:`BatchHandler.handle_batch`."""

    entry_id: str
    event: EventEnvelope
    #: Its ``CONSUMER`` span (open for the whole batch), or None without tracing.
    span: Any = None

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """The entry's own context for work done for it alone: its request id (for logs
        and error reports) and, with tracing on, its span as the current one (the calls
        made inside become its children)."""
        token = request_id_var.set(self.event.request_id)
        try:
            with in_consume_span(self.span):
                yield
        finally:
            request_id_var.reset(token)


@runtime_checkable
class BatchHandler(Protocol):
    """A handler that can also take a consumer's batch at once (its round trips shared).

    ``handle_batch`` answers one outcome per entry, in order: ``None`` when the entry is
    done (acknowledged), a :class:`PoisonMessage` to dead-letter it at once, any other
    exception to leave it pending for a retry (its attempt counted, dead-lettered after
    ``max_attempts``): exactly what returning or raising would do for the entry alone.
    Raising fails every entry of the batch. The single-event ``__call__`` stays for
    callers that have one event.
    """

    async def __call__(self, event: EventEnvelope) -> None: ...

    async def handle_batch(self, entries: Sequence[BatchEntry]) -> Sequence[Exception | None]: ...


#: For events that carry an entity's whole state: the entity's key and the state's
#: version, so a batch need only handle the newest event per entity (else ``None``).
StateKey = Callable[[EventEnvelope], tuple[str, int] | None]


#: KEYS[1] stream; ARGV group, own consumer name, idle threshold (ms). Removes the
#: group's consumers (but the caller) idle at least that long with nothing pending.
_REMOVE_DEAD_CONSUMERS = """
local removed = {}
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
    local info = {}
    for i = 1, #consumer, 2 do info[consumer[i]] = consumer[i + 1] end
    if info['name'] ~= ARGV[2] and tonumber(info['pending']) == 0
            and tonumber(info['idle']) >= tonumber(ARGV[3]) then
        redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
        removed[#removed + 1] = info['name']
    end
end
return removed
"""


#: Per consumer group, for operators (docs/operations.md): entries dead-lettered, and the
#: group's backlog as Redis reports it (``XINFO GROUPS``), refreshed by every replica's
#: consumer loop at its claim interval.
STREAM_DEAD_LETTERS = Counter(
    "stream_dead_letters",
    "Entries moved to the dead-letter stream, per consumer group.",
    ["stream", "group"],
)
STREAM_LAG = Gauge(
    "stream_consumer_lag",
    "Entries of the stream not yet delivered to the consumer group (XINFO GROUPS lag).",
    ["stream", "group"],
)
STREAM_PENDING = Gauge(
    "stream_consumer_pending",
    "Entries delivered to the consumer group and not yet acknowledged.",
    ["stream", "group"],
)
#: Redis before 7 does not report a group's lag: at most this many entries are counted.
LAG_COUNT_CAP = 1000


class StreamConsumer:
    """A consumer-group reader with bounded retries and a dead-letter stream.

    Safe with several replicas in one group, each under its own ``consumer`` name:
    entries a dead replica left unacknowledged for ``claim_idle_ms`` are taken over by a
    live one (``XAUTOCLAIM``), and with ``dead_consumer_idle_ms`` set, consumers idle that
    long with nothing pending are removed from the group (``XGROUP DELCONSUMER``), so
    replicas that come and go (pod names, process ids) do not pile up in it.

    A ``handler`` that is a :class:`BatchHandler` gets each batch's entries in one
    ``handle_batch`` call (new, retried and claimed ones alike); any other gets them one
    by one.
    """

    def __init__(
        self,
        *,
        redis: Redis,
        stream: str,
        group: str,
        consumer: str,
        handler: EventHandler,
        max_attempts: int = 5,
        block_ms: int = 1000,
        batch_size: int = 100,
        claim_idle_ms: int = 30_000,
        retry_delay_s: float = 0.5,
        state_key: StateKey | None = None,
        dead_consumer_idle_ms: int | None = None,
        linger_s: float = 0.0,
    ) -> None:
        if dead_consumer_idle_ms is not None and dead_consumer_idle_ms <= block_ms:
            # A live consumer is idle for up to a block between two reads.
            raise ValueError("dead_consumer_idle_ms must exceed block_ms")
        self.redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self._batch_handler = handler if isinstance(handler, BatchHandler) else None
        self.max_attempts = max_attempts
        self.block_ms = block_ms
        self.batch_size = batch_size
        self.claim_idle_ms = claim_idle_ms
        self.retry_delay_s = retry_delay_s
        self.state_key = state_key
        self.dead_consumer_idle_ms = dead_consumer_idle_ms
        #: Seconds to wait after a read that found entries (fewer than a batch) before
        #: the next one, so that one read and one ``XACK`` take what arrived meanwhile
        #: instead of one each per burst; 0 reads again at once.
        self.linger_s = linger_s
        self.dead_letter_stream = f"{stream}.dead"
        self._attempts_key = f"{stream}:{group}:attempts"
        #: Whether this consumer may hold entries it has not acknowledged (a handler
        #: failed, a claim, a start): the run loop reads them back only then.
        self._recheck_pending = True

    async def ensure_group(self) -> None:
        """Create the consumer group (from the stream's start) if it does not exist."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def process_batch(self, *, pending: bool = False, block_ms: int | None = None) -> int:
        """Read and handle one batch: new entries, or this consumer's unacknowledged ones.

        New entries are waited for up to ``block_ms`` (default: the consumer's). What the
        batch handled is acknowledged together once it is done (one round trip, not two
        per entry): a crash in between delivers those entries again, which every handler
        takes (delivery is at least once).
        """
        if pending:
            self._recheck_pending = False
        response: Any = await self.redis.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: "0" if pending else ">"},
            count=self.batch_size,
            block=None if pending else (self.block_ms if block_ms is None else block_ms),
        )
        entries = [entry for _stream, stream_entries in response or [] for entry in stream_entries]
        if pending and len(entries) >= self.batch_size:
            self._recheck_pending = True  # more may wait behind this batch
        superseded = self._superseded(entries)
        # Trimmed away while pending, or a state a newer event of this batch replaces
        # whole (it is handled instead, whatever its position): acknowledged unhandled.
        done = [
            entry_id for entry_id, fields in entries if fields is None or entry_id in superseded
        ]
        live = [
            (entry_id, fields)
            for entry_id, fields in entries
            if fields is not None and entry_id not in superseded
        ]
        try:
            await self._handle_entries(live, done)
        finally:
            # An entry read as new (">") was never delivered to this group before, so it
            # has no failed attempts to forget: only retried ones need the HDEL.
            await self._acknowledge(done, forget_attempts=pending)
        return len(live)

    async def _handle_entries(
        self, entries: list[tuple[str, Mapping[str, str]]], done: list[str]
    ) -> None:
        """Handle ``entries``, adding to ``done`` those to acknowledge as they are."""
        if self._batch_handler is not None:
            await self._handle_batch(self._batch_handler, entries, done)
            return
        for entry_id, fields in entries:
            if await self._handle(entry_id, fields):
                done.append(entry_id)

    async def _acknowledge(self, entry_ids: list[str], *, forget_attempts: bool) -> None:
        if not entry_ids:
            return
        if not forget_attempts:
            await self.redis.xack(self.stream, self.group, *entry_ids)
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(self.stream, self.group, *entry_ids)
            pipe.hdel(self._attempts_key, *entry_ids)
            await pipe.execute()

    def _superseded(self, entries: list[tuple[str, Mapping[str, str] | None]]) -> set[str]:
        if self.state_key is None:
            return set()
        newest: dict[str, tuple[int, str]] = {}
        older: set[str] = set()
        for entry_id, fields in entries:
            if fields is None:
                continue
            try:
                state = self.state_key(EventEnvelope.from_stream_fields(fields))
            except (KeyError, ValidationError, ValueError):
                continue  # left for _handle to dead-letter
            if state is None:
                continue
            key, version = state
            kept = newest.get(key)
            if kept is None or version >= kept[0]:
                if kept is not None:
                    older.add(kept[1])
                newest[key] = (version, entry_id)
            else:
                older.add(entry_id)
        return older

    async def claim_abandoned(self) -> int:
        """Take over entries another (crashed) consumer left unacknowledged for too long."""
        result = await self.redis.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id="0-0",
            count=self.batch_size,
        )
        claimed = result[1] if result else []
        done = [entry_id for entry_id, fields in claimed if fields is None]
        try:
            await self._handle_entries(
                [(entry_id, fields) for entry_id, fields in claimed if fields is not None], done
            )
        finally:
            await self._acknowledge(done, forget_attempts=True)
        return len(claimed)

    async def remove_dead_consumers(self) -> list[str]:
        """Remove the group's consumers idle over ``dead_consumer_idle_ms`` with nothing
        pending (their entries were claimed first); the names removed.

        Only consumers with no pending entries go (``DELCONSUMER`` drops what a consumer
        holds, which would then never be delivered again), checked and removed in one
        script: a consumer that reads in between cannot lose what it read. A live
        consumer removed while its stream was quiet comes back with its next read.
        """
        if self.dead_consumer_idle_ms is None:
            return []
        try:
            removed: Any = await self.redis.eval(
                _REMOVE_DEAD_CONSUMERS,
                1,
                self.stream,
                self.group,
                self.consumer,
                self.dead_consumer_idle_ms,
            )
        except ResponseError as exc:
            if "NOGROUP" in str(exc) or "no such key" in str(exc):
                return []  # the stream or the group is not there (yet)
            raise
        names = [_text(name) for name in removed or []]
        for name in names:
            logger.info(
                "stream_consumer_removed", stream=self.stream, group=self.group, consumer=name
            )
        return names

    async def observe_backlog(self) -> None:
        """Set the group's lag and pending gauges from ``XINFO GROUPS``.

        Redis 7 reports the lag itself; before 7 (or when it answers nil, after
        deletions in the stream) the entries after the group's last-delivered id are
        counted, up to ``LAG_COUNT_CAP`` (the gauge then reads "at least that").
        """
        try:
            groups: Any = await self.redis.xinfo_groups(self.stream)
        except ResponseError:
            return  # the stream is not there (yet)
        for info in groups:
            if _text(info["name"]) != self.group:
                continue
            labels = {"stream": self.stream, "group": self.group}
            STREAM_PENDING.labels(**labels).set(int(info["pending"]))
            lag = info.get("lag")
            if lag is None:
                after = f"({_text(info['last-delivered-id'])}"
                undelivered = await self.redis.xrange(
                    self.stream, min=after, max="+", count=LAG_COUNT_CAP
                )
                lag = len(undelivered or [])
            STREAM_LAG.labels(**labels).set(int(lag))

    async def _handle(self, entry_id: str, fields: Mapping[str, str]) -> bool:
        """Handle one entry; whether it is done and waits for the batch's acknowledgement
        (else it failed and stays pending for a retry, or it was dead-lettered)."""
        try:
            event = EventEnvelope.from_stream_fields(fields)
        except (KeyError, ValidationError, ValueError) as exc:
            await self._dead_letter(entry_id, fields, f"unparseable: {exc!r}")
            return False
        token = request_id_var.set(event.request_id)
        try:
            # With tracing on, handled as a child of the trace that published it.
            with consume_span(
                stream=self.stream,
                group=self.group,
                event_type=event.type,
                event_id=str(event.id),
                traceparent=event.traceparent,
            ):
                await self.handler(event)
        except asyncio.CancelledError:
            raise
        except PoisonMessage as exc:
            await self._dead_letter(entry_id, fields, f"poison: {exc}")
            return False
        except Exception as exc:
            await self._failed(entry_id, fields, event, exc)
            return False
        finally:
            request_id_var.reset(token)
        return True

    async def _handle_batch(
        self,
        handler: BatchHandler,
        entries: list[tuple[str, Mapping[str, str]]],
        done: list[str],
    ) -> None:
        """Handle ``entries`` in one ``handle_batch`` call, each with the outcome
        :meth:`_handle` would have given it alone."""
        parsed: list[tuple[str, Mapping[str, str], EventEnvelope]] = []
        for entry_id, fields in entries:
            try:
                parsed.append((entry_id, fields, EventEnvelope.from_stream_fields(fields)))
            except (KeyError, ValidationError, ValueError) as exc:
                await self._dead_letter(entry_id, fields, f"unparseable: {exc!r}")
        if not parsed:
            return
        spans = consume_spans(
            stream=self.stream,
            group=self.group,
            events=[(event.type, str(event.id), event.traceparent) for _, _, event in parsed],
        )
        batch = [
            BatchEntry(entry_id, event, span)
            for (entry_id, _fields, event), span in zip(parsed, spans, strict=True)
        ]
        outcomes: list[Exception | None] = [None] * len(batch)
        try:
            try:
                outcomes = list(await handler.handle_batch(batch))
                if len(outcomes) != len(batch):
                    raise ValueError(f"{len(outcomes)} outcomes for {len(batch)} entries")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                outcomes = [exc] * len(batch)
            for entry, (entry_id, fields, event), outcome in zip(
                batch, parsed, outcomes, strict=True
            ):
                with entry.scope():
                    if outcome is None:
                        done.append(entry_id)
                    elif isinstance(outcome, PoisonMessage):
                        await self._dead_letter(entry_id, fields, f"poison: {outcome}")
                    else:
                        await self._failed(entry_id, fields, event, outcome)
        finally:
            for span, outcome in zip(spans, outcomes, strict=True):
                end_consume_span(span, outcome)

    async def _failed(
        self, entry_id: str, fields: Mapping[str, str], event: EventEnvelope, exc: Exception
    ) -> None:
        """A failed attempt: counted, the entry left pending, dead-lettered at the last."""
        self._recheck_pending = True
        attempts = await self.redis.hincrby(self._attempts_key, entry_id, 1)
        logger.warning(
            "event_handler_failed",
            stream=self.stream,
            group=self.group,
            event_id=str(event.id),
            event_type=event.type,
            attempt=attempts,
            error=repr(exc),
        )
        if attempts >= self.max_attempts:
            report_exception(exc)  # given up on: an error report, with its request id
            await self._dead_letter(entry_id, fields, repr(exc))

    async def _dead_letter(self, entry_id: str, fields: Mapping[str, str], reason: str) -> None:
        logger.error("event_dead_lettered", stream=self.stream, entry_id=entry_id, reason=reason)
        dead: dict[Any, Any] = {**fields}
        dead.update(dead_reason=reason[:500], group=self.group, entry_id=entry_id)
        await self.redis.xadd(self.dead_letter_stream, dead)
        await self._acknowledge([entry_id], forget_attempts=True)
        STREAM_DEAD_LETTERS.labels(stream=self.stream, group=self.group).inc()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, starting with whatever this consumer left pending."""
        backoff = 0.2
        claim_every = max(self.claim_idle_ms / 1000 / 2, 1.0)
        last_claim = 0.0
        loop = asyncio.get_running_loop()
        # Once, and again after any Redis error (the stream or group may be gone, as
        # after a FLUSHALL): not a failing XGROUP CREATE per read.
        group_ready = False
        self._recheck_pending = True  # what this consumer left pending before it stopped
        while not stop.is_set():
            try:
                if not group_ready:
                    await self.ensure_group()
                    group_ready = True
                # Retries first: entries that failed stay pending for this consumer. Read
                # only when something may be there (a failure, a claim, a start), not
                # before every read of new entries.
                retried = await self.process_batch(pending=True) if self._recheck_pending else 0
                if loop.time() - last_claim >= claim_every:
                    last_claim = loop.time()
                    await self.claim_abandoned()
                    await self.remove_dead_consumers()
                    await self.observe_backlog()
                if retried:
                    await asyncio.sleep(self.retry_delay_s)
                handled = await self.process_batch()
                backoff = 0.2
                if self.linger_s and 0 < handled < self.batch_size:
                    # A burst is arriving: let it gather (a full batch reads on at once).
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.linger_s)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                group_ready = False
                self._recheck_pending = True
                logger.warning("stream_consumer_redis_error", stream=self.stream, error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(backoff * 2, 5.0)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
