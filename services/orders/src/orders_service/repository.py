"""Every query of the orders service (SQLAlchemy 2.0, async). Functions flush, never commit.

The saga's hot path (issue 17) runs statements built once at import with bind
parameters: a step transaction then costs each statement's execution, not its
construction, coercion and cache key. The step records of one transaction go in one
round trip (:func:`record_steps`), however many steps it records. The saga reads the
order row without the ORM, into an :class:`OrderRow` (:func:`lock_order_row`), and a
step transaction's writes (the columns of the row it changed, its step rows and its
events) are one statement (:func:`write_saga_changes`): no identity map, no unit of
work, no flush. That statement can also stand alone, without a transaction around it,
guarded by the row's version and lease (the saga's step outcomes, see
``SagaOrchestrator._write``).

The saga's writes (step rows, the order row's changes, its events) go straight to the
transaction's asyncpg connection as SQL written here (:func:`_driver`): SQLAlchemy's
execution of a statement (its greenlet, execution context, parameter processing and
result) cost about as much CPU again as asyncpg's own (issue 17, docs/benchmarks.md).
They run inside the session's transaction, after its first statement began it, and
commit or roll back with it. Not being SQLAlchemy's, they get no statement span when
tracing is on (the locked read, through SQLAlchemy, does).
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any
from uuid import UUID

from sqlalchemy import (
    CTE,
    Select,
    String,
    Table,
    Text,
    bindparam,
    cast,
    column,
    event,
    func,
    literal_column,
    or_,
    select,
    true,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction, aliased

from orders_service.domain.saga import IN_FLIGHT, Step, StepStatus, kind_of
from orders_service.events import SOURCE, STREAM
from orders_service.models import CustomerOrder, OutboxEvent, SagaStep
from storefront_kit.audit import AUDIT_STREAM, AuditEntry, audit_event
from storefront_kit.events import EventEnvelope, add_outbox_event, outbox_staged
from storefront_kit.ids import new_id

__all__ = [
    "AnyOrder",
    "OrderRow",
    "StepRecord",
    "claim_expired_sagas",
    "confirmed_order_count",
    "count_orders",
    "database_now",
    "declined_in_row",
    "distinct_payment_tokens",
    "get_order",
    "get_order_by_key",
    "holds_order",
    "insert_order",
    "list_orders",
    "lock_order_row",
    "order_row",
    "orders_of_user",
    "pseudonymise_user",
    "read_order_row",
    "receipt",
    "record_step",
    "record_steps",
    "release_lease",
    "renew_lease",
    "stage_audit",
    "stage_event",
    "stage_status_changed",
    "stage_steps",
    "steps_of",
    "steps_of_orders",
    "write_saga_changes",
]

_IN_FLIGHT = sorted(IN_FLIGHT)


async def insert_order(
    session: AsyncSession,
    *,
    user_id: str,
    idempotency_key: str,
    request_hash: str,
    items: list[dict[str, Any]],
    shipping_address: dict[str, Any],
    payment_method: dict[str, Any],
    lease_owner: str,
    lease_ttl_s: float,
    client_address: str | None = None,
    phone_ref: str | None = None,
    steps: Sequence["StepRecord"] = (),
) -> CustomerOrder | None:
    """Insert a PENDING order leased to ``lease_owner``, with the step rows of ``steps``
    (its saga's first records), in one statement; ``None`` if the key is taken (then
    nothing is written).

    One statement, so that a session in autocommit writes a new checkout in one round
    trip instead of ``BEGIN``, the insert, the steps and ``COMMIT`` (issue 17), and the
    order never exists without its first step rows.
    """
    inserted = (
        insert(CustomerOrder)
        .values(
            id=new_id(),
            user_id=user_id,
            status="PENDING",
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            items=items,
            lines=[],
            shipping_address=shipping_address,
            payment_method=payment_method,
            client_address=client_address,
            phone_ref=phone_ref,
            lease_owner=lease_owner,
            lease_expires_at=func.now() + timedelta(seconds=lease_ttl_s),
        )
        .on_conflict_do_nothing(index_elements=["user_id", "idempotency_key"])
        # the whole row back (server defaults included): no second read
        .returning(*CustomerOrder.__table__.columns)
        .cte("inserted")
    )
    query = select(aliased(CustomerOrder, inserted))
    if steps:
        query = query.add_cte(_first_step_rows(inserted, steps))
    return await session.scalar(query)


def _first_step_rows(inserted: CTE, records: Sequence["StepRecord"]) -> CTE:
    """The insert of a new order's step rows, from the order ``inserted`` (none when the
    order's insert met its key: nothing is inserted then)."""
    step = SagaStep.__table__.c
    rows = values(
        *(
            column(name, step[name].type)
            for name in ("id", "step", "kind", "status", "attempts", "last_error")
        ),
        column("result", Text()),
        name="first_steps",
    ).data(_step_rows(records))
    return (
        insert(SagaStep)
        .from_select(
            [
                "id",
                "order_id",
                "user_id",
                "step",
                "kind",
                "status",
                "attempts",
                "last_error",
                "result",
            ],
            select(
                rows.c.id,
                inserted.c.id,
                inserted.c.user_id,
                rows.c.step,
                rows.c.kind,
                rows.c.status,
                rows.c.attempts,
                rows.c.last_error,
                cast(rows.c.result, JSONB),
            ).select_from(inserted.join(rows, true())),
        )
        .cte("first_steps_inserted")
    )


async def get_order_by_key(
    session: AsyncSession, *, user_id: str, idempotency_key: str
) -> CustomerOrder | None:
    """The order this user placed with ``idempotency_key``."""
    return await session.scalar(
        select(CustomerOrder).where(
            CustomerOrder.user_id == user_id, CustomerOrder.idempotency_key == idempotency_key
        )
    )


async def get_order(
    session: AsyncSession,
    order_id: UUID,
    *,
    user_id: str | None = None,
    for_update: bool = False,
) -> CustomerOrder | None:
    """One order (of ``user_id`` when given), locked for update on request."""
    if user_id is None:  # the saga's reads: statements built once
        query = _ORDER_LOCKED if for_update else _ORDER
        return await session.scalar(query, {"p_order_id": order_id})
    query = select(CustomerOrder).where(CustomerOrder.id == order_id)
    if user_id is not None:
        query = query.where(CustomerOrder.user_id == user_id)
    if for_update:
        query = query.with_for_update()
    # populate_existing: a locked read must not be served from the identity map.
    return await session.scalar(query.execution_options(populate_existing=True))


async def holds_order(session: AsyncSession, order_id: UUID) -> bool:
    """Whether this database holds ``order_id`` (which shard an admin's order is on)."""
    found = await session.scalar(select(CustomerOrder.id).where(CustomerOrder.id == order_id))
    return found is not None


# populate_existing: a locked read must not be served from the identity map.
_ORDER = (
    select(CustomerOrder)
    .where(CustomerOrder.id == bindparam("p_order_id"))
    .execution_options(populate_existing=True)
)
_ORDER_LOCKED = _ORDER.with_for_update()


# -- The order row of the saga's step transactions, without the ORM (issue 17) --------


@dataclass(slots=True, eq=False)
class OrderRow:
    """An order as the saga reads and writes it: the row's columns in a plain object.

    Read by :func:`lock_order_row` (or :func:`read_order_row`), changed in place by the
    saga's step handlers and :func:`~orders_service.service.transitions.transition`, and
    written back by :func:`write_saga_changes`: one ``UPDATE`` of the columns that differ
    from what was read. Nothing else tracks it (no session, no identity map), so a
    change is written only by that call. The columns no step reads (the idempotency key,
    the request's fingerprint, the timestamps) are not loaded. A JSON column is changed
    by assigning a new value (``order.lines = [...]``), not in place: a changed column
    is one whose value is not the one read (as the ORM's change tracking of JSONB).
    """

    id: UUID
    user_id: str
    status: str
    reason: str | None
    reason_detail: str | None
    outcome: str | None
    cancel_requested: bool
    items: list[dict[str, Any]]
    lines: list[dict[str, Any]]
    subtotal: int | None
    total: int | None
    currency: str | None
    shipping_address: dict[str, Any]
    payment_method: dict[str, Any]
    client_address: str | None
    phone_ref: str | None
    payment_id: str | None
    shipment_id: str | None
    tracking_number: str | None
    label_url: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    retry_rounds: int
    version: int
    #: The column values as read or last written (what :func:`write_saga_changes` compares).
    stored: tuple[Any, ...] = field(default=(), repr=False)


#: The saga's order: a plain row, or a mapped one (the staff and customer use cases).
AnyOrder = CustomerOrder | OrderRow

_ORDERS: Table = CustomerOrder.__table__  # type: ignore[assignment]
_ROW_COLUMNS = tuple(f.name for f in fields(OrderRow) if f.name != "stored")
#: The row's column values, in ``_ROW_COLUMNS`` order (one C call, no Python frames).
_row_values = attrgetter(*_ROW_COLUMNS)
_ORDER_ROW = select(*(_ORDERS.c[name] for name in _ROW_COLUMNS)).where(
    _ORDERS.c.id == bindparam("p_order_id")
)
_ORDER_ROW_LOCKED = _ORDER_ROW.with_for_update()
#: ``UPDATE`` statements by the columns they set (indexes into ``_ROW_COLUMNS``), each
#: written the first time a step changes that set: a handful in all.
_ROW_UPDATES: dict[tuple[int, ...], str] = {}


def order_row(order: CustomerOrder) -> OrderRow:
    """The saga's plain row of a mapped order (as loaded: nothing is read)."""
    values: tuple[Any, ...] = _row_values(order)
    row = OrderRow(*values)
    row.stored = values
    return row


async def lock_order_row(session: AsyncSession, order_id: UUID) -> OrderRow | None:
    """The order's row, locked ``FOR UPDATE`` until the transaction ends."""
    return await _read_row(session, _ORDER_ROW_LOCKED, order_id)


async def read_order_row(session: AsyncSession, order_id: UUID) -> OrderRow | None:
    """The order's row, not locked."""
    return await _read_row(session, _ORDER_ROW, order_id)


async def _read_row(session: AsyncSession, statement: Any, order_id: UUID) -> OrderRow | None:
    connection = await session.connection()
    row = (await connection.execute(statement, {"p_order_id": order_id})).first()
    if row is None:
        return None
    values = tuple(row)
    order = OrderRow(*values)
    order.stored = values
    return order


@dataclass(frozen=True, slots=True)
class StepRecord:
    """What one step's row says after a transaction (see :func:`record_steps`)."""

    step: Step
    status: StepStatus
    new_attempt: bool = False
    error: str | None = None
    result: dict[str, Any] | None = None


def stage_steps(session: AsyncSession, records: Sequence[StepRecord]) -> None:
    """Stage step rows in a saga step transaction: :func:`write_saga_changes` writes
    them, with the order row's changes and the staged events, in one statement."""
    session.info.setdefault(_STAGED_STEPS, []).extend(records)


async def write_saga_changes(
    session: AsyncSession, order: OrderRow, *, if_unchanged: bool = False
) -> bool:
    """Write what a saga step changed, in one statement: the columns of ``order`` that
    differ from what was read (or last written), the step rows :func:`stage_steps`
    staged and the events :func:`stage_event` staged. Nothing to write: no statement.

    By default the caller's transaction holds the row (:func:`lock_order_row`).
    ``if_unchanged`` is for a session in autocommit, with no transaction around the
    statement: it applies only to the row as ``order`` last read or wrote it (the same
    ``version`` and user, still leased to the same replica, no cancel asked) and writes
    nothing otherwise (False). A customer's cancel, a staff decision and a lease taken
    over all change one of those, and they take the row lock, so the statement either
    runs before them or sees what they wrote. ``updated_at`` is set by the database, as
    the ORM's ``onupdate`` did. Only the columns a saga changes may differ
    (:data:`_SAGA_WRITES`).
    """
    values: tuple[Any, ...] = _row_values(order)
    stored = order.stored or (None,) * len(values)  # built, not read: every column
    changed = tuple(
        [i for i in range(1, len(values)) if values[i] is not stored[i] and values[i] != stored[i]]
    )
    records: list[StepRecord] = session.info.pop(_STAGED_STEPS, None) or []
    events: list[tuple[UUID, str, str, str]] = session.info.pop(_STAGED, None) or []
    if if_unchanged and not order.stored:
        raise ValueError(f"order {order.id}: no row read to compare with")
    if len({record.step for record in records}) != len(records):
        # one statement may not update a step's row twice
        if if_unchanged:
            raise ValueError(f"order {order.id}: a step recorded twice needs the locked row")
        await record_steps(session, order, records)
        records = []
    if not (changed or records or events or if_unchanged):
        return True
    shape = (changed, bool(records), bool(events), if_unchanged)
    sql = _SAGA_WRITES_SQL.get(shape)
    if sql is None:
        sql = _SAGA_WRITES_SQL[shape] = _saga_write(*shape)
    args: list[Any] = [order.id]
    args += [
        json.dumps(values[i]) if _ROW_COLUMNS[i] in _JSON_WRITES else values[i] for i in changed
    ]
    if if_unchanged:
        args += [stored[i] for i in _GUARD]
    if records:
        args.append(order.user_id)
        args += [list(column) for column in zip(*_step_rows(records), strict=True)]
    if events:
        args += [list(column) for column in zip(*events, strict=True)]
    driver = await _driver(session, in_transaction=not if_unchanged)
    written = await driver.fetchval(sql, *args)
    if not written:
        if if_unchanged:
            return False
        raise RuntimeError(f"order {order.id}: its row is gone")
    order.stored = values
    return True


#: The columns a saga step changes (through its handler or ``transition``).
_SAGA_WRITES = frozenset(
    {
        "status",
        "reason",
        "reason_detail",
        "outcome",
        "lines",
        "subtotal",
        "total",
        "currency",
        "payment_id",
        "shipment_id",
        "tracking_number",
        "label_url",
        "lease_owner",
        "lease_expires_at",
        "retry_rounds",
        "version",
    }
)
#: Of those, the JSONB ones (sent as JSON text: the driver's codec takes text).
_JSON_WRITES = frozenset({"lines"})
#: What ``if_unchanged`` compares (indexes into ``_ROW_COLUMNS``; ``NOT cancel_requested``
#: besides): every change by someone else that a saga step must see bumps ``version``
#: (a cancel, a staff decision), takes the lease, or pseudonymises the user.
_GUARD = tuple(_ROW_COLUMNS.index(name) for name in ("version", "user_id", "lease_owner"))
_STAGED_STEPS = "orders_service.staged_steps"
#: The statements of :func:`write_saga_changes` by their shape, each written the first
#: time a step needs it: a handful in all.
_SAGA_WRITES_SQL: dict[tuple[tuple[int, ...], bool, bool, bool], str] = {}


def _step_rows(records: Sequence[StepRecord]) -> list[tuple[Any, ...]]:
    """The step rows' values but the order's: id, step, kind, status, attempts (0 or 1),
    last error, result (JSON text; "no result" is SQL NULL, kept by an update)."""
    return [
        (
            new_id(),
            record.step.value,
            kind_of(record.step).value,
            record.status.value,
            1 if record.new_attempt else 0,
            record.error[:500] if record.error else None,
            None if record.result is None else json.dumps(record.result),
        )
        for record in records
    ]


def _saga_write(changed: tuple[int, ...], steps: bool, events: bool, guarded: bool) -> str:
    """The statement of :func:`write_saga_changes` for one shape of change (``$1`` the
    order's id, then the changed columns' values, the guard's, the steps' columns as
    arrays, the events' columns as arrays).

    The order's row is the first part (``o``): its ``UPDATE``, or a row lock when only
    steps or events are written. The step rows and events are inserted from it, so a
    guard that finds the row changed writes nothing at all.
    """
    names = [_ROW_COLUMNS[i] for i in changed]
    if not _SAGA_WRITES.issuperset(names):
        raise ValueError(f"a saga does not write {sorted(set(names) - _SAGA_WRITES)}")
    n = 2
    sets = []
    for name in names:
        sets.append(f'"{name}" = ${n}' + ("::text::jsonb" if name in _JSON_WRITES else ""))
        n += 1
    where = "id = $1"
    if guarded:
        where += (
            f" AND version = ${n} AND user_id = ${n + 1} AND lease_owner = ${n + 2}"
            " AND NOT cancel_requested"
        )
        n += 3
    # identifiers from _SAGA_WRITES only, values as parameters
    if sets:
        assignments = ", ".join(sets)
        row = f"UPDATE customer_order SET {assignments}, updated_at = now() WHERE {where}"  # noqa: S608
        row += " RETURNING id"
    else:
        row = f"SELECT id FROM customer_order WHERE {where} FOR UPDATE"  # noqa: S608
    parts = [f"o AS ({row})"]
    if steps:
        arrays = ", ".join(
            f"${n + 1 + k}::{kind}[]"
            for k, kind in enumerate(("uuid", "text", "text", "text", "int", "text", "text"))
        )
        parts.append(
            _INSERT_STEPS.format(user_id=f"${n}", arrays=arrays, conflict=_ON_STEP_CONFLICT),
        )
        n += 8
    if events:
        arrays = ", ".join(
            f"${n + k}::{kind}[]" for k, kind in enumerate(("uuid",) + ("text",) * 3)
        )
        parts.append(_INSERT_EVENTS.format(arrays=arrays))
    return f"WITH {', '.join(parts)} SELECT count(*) FROM o"  # noqa: S608


#: The step rows' upsert, from the row ``o``.
_INSERT_STEPS = """s AS (
    INSERT INTO saga_step
        (id, order_id, user_id, step, kind, status, attempts, last_error, result, updated_at)
    SELECT r.id, o.id, {user_id}, r.step, r.kind, r.status, r.attempts, r.last_error,
        r.result::jsonb, now()
    FROM o, unnest({arrays}) AS r(id, step, kind, status, attempts, last_error, result)
    {conflict})"""
#: What a step row's upsert keeps when the row is there. It follows from the row it
#: would have inserted (``excluded``): the attempts add up (0 or 1), a NULL ``result``
#: keeps the old one, and ``last_error`` is replaced when an error is given or the step
#: succeeded or was skipped (an empty error counts as none).
_ON_STEP_CONFLICT = """ON CONFLICT (order_id, step) DO UPDATE SET
    status = excluded.status,
    updated_at = now(),
    attempts = saga_step.attempts + excluded.attempts,
    last_error = CASE
        WHEN excluded.last_error IS NOT NULL OR excluded.status IN ('succeeded', 'skipped')
        THEN excluded.last_error
        ELSE saga_step.last_error
    END,
    result = coalesce(excluded.result, saga_step.result)
"""
#: The staged events, from the row ``o`` (the outbox's rows, as ``_INSERT_OUTBOX_SQL``).
_INSERT_EVENTS = """e AS (
    INSERT INTO outbox_event (id, stream, event_type, envelope)
    SELECT r.id, r.stream, r.event_type, r.envelope::jsonb
    FROM o, unnest({arrays}) AS r(id, stream, event_type, envelope)
)"""


_DRIVER = "orders_service.driver_connection"


async def _driver(session: AsyncSession, *, in_transaction: bool = True) -> Any:
    """The asyncpg connection of the session's transaction, once a statement began it.

    SQLAlchemy sends ``BEGIN`` with a transaction's first statement: a statement sent
    to the driver before that would run outside the transaction, so it is refused
    (unless ``in_transaction`` is False: a session in autocommit, whose every statement
    stands alone).
    """
    driver: Any = session.info.get(_DRIVER)
    if driver is None:
        connection = await session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        session.info[_DRIVER] = driver
    if in_transaction and not driver.is_in_transaction():
        raise RuntimeError("no statement has begun this transaction yet")
    return driver


async def database_now(session: AsyncSession) -> datetime | None:
    """The database's ``now()``: the clock leases are compared with."""
    return await session.scalar(select(func.now()))


def _filtered(
    query: Select[Any], *, user_id: str | None, statuses: Sequence[str] | None
) -> Select[Any]:
    if user_id is not None:
        query = query.where(CustomerOrder.user_id == user_id)
    if statuses:
        query = query.where(CustomerOrder.status.in_(statuses))
    return query


async def list_orders(
    session: AsyncSession,
    *,
    user_id: str | None = None,
    statuses: Sequence[str] | None = None,
    offset: int,
    limit: int,
) -> Sequence[CustomerOrder]:
    """Orders, newest first (ids are time-ordered)."""
    query = _filtered(select(CustomerOrder), user_id=user_id, statuses=statuses)
    return (
        await session.scalars(
            query.order_by(CustomerOrder.created_at.desc(), CustomerOrder.id.desc())
            .offset(offset)
            .limit(limit)
        )
    ).all()


async def count_orders(
    session: AsyncSession, *, user_id: str | None = None, statuses: Sequence[str] | None = None
) -> int:
    """How many orders :func:`list_orders` pages through."""
    query = _filtered(
        select(func.count()).select_from(CustomerOrder), user_id=user_id, statuses=statuses
    )
    return int(await session.scalar(query) or 0)


async def steps_of(session: AsyncSession, order_id: UUID) -> dict[Step, SagaStep]:
    """The saga steps recorded for an order, by step."""
    rows = await session.scalars(_STEPS_OF, {"p_order_id": order_id})
    return {Step(row.step): row for row in rows}


_STEPS_OF = (
    select(SagaStep)
    .where(SagaStep.order_id == bindparam("p_order_id"))
    .order_by(SagaStep.created_at, SagaStep.id)
    .execution_options(populate_existing=True)
)


async def record_step(
    session: AsyncSession,
    order: AnyOrder,
    step: Step,
    status: StepStatus,
    *,
    new_attempt: bool = False,
    error: str | None = None,
    result: dict[str, Any] | None = None,
) -> None:
    """Insert or update one step's row (``new_attempt`` counts one more attempt)."""
    record = StepRecord(step, status, new_attempt=new_attempt, error=error, result=result)
    await record_steps(session, order, [record])


async def record_steps(
    session: AsyncSession, order: AnyOrder, records: Sequence[StepRecord]
) -> None:
    """Insert or update the rows of ``records`` (distinct steps), in one round trip.

    Per row: the status; one more attempt when ``new_attempt``; ``last_error`` set to
    ``error`` when one is given, cleared on success or skip, kept otherwise; ``result``
    replaced when given, kept otherwise.
    """
    if not records:
        return
    if len({record.step for record in records}) != len(records):
        # one statement may not update a row twice: one statement per record
        for record in records:
            await record_steps(session, order, [record])
        return
    rows = [(row[0], order.id, order.user_id, *row[1:]) for row in _step_rows(records)]
    driver = await _driver(session)
    if len(rows) == 1:
        await driver.execute(_UPSERT_STEP, *rows[0])
    else:  # one executemany, which asyncpg sends as one pipeline (one round trip)
        await driver.executemany(_UPSERT_STEP, rows)


#: One step row's upsert (what an update keeps: ``_ON_STEP_CONFLICT``).
_UPSERT_STEP = (
    """
INSERT INTO saga_step
    (id, order_id, user_id, step, kind, status, attempts, last_error, result, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, now())
"""
    + _ON_STEP_CONFLICT
)


async def claim_expired_sagas(
    session: AsyncSession, *, owner: str, lease_ttl_s: float, limit: int
) -> list[UUID]:
    """Lease up to ``limit`` in-flight sagas whose lease ran out (or that wait for a retry).

    ``FOR UPDATE SKIP LOCKED`` lets several replicas scan at once without two of them
    taking the same saga.
    """
    due = (
        select(CustomerOrder.id)
        .where(
            CustomerOrder.status.in_(_IN_FLIGHT),
            or_(
                CustomerOrder.lease_expires_at.is_(None),
                CustomerOrder.lease_expires_at < func.now(),
            ),
        )
        .order_by(CustomerOrder.lease_expires_at.nulls_first())
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.scalars(due)).all())
    if ids:
        await session.execute(
            update(CustomerOrder)
            .where(CustomerOrder.id.in_(ids))
            .values(
                lease_owner=owner,
                lease_expires_at=func.now() + timedelta(seconds=lease_ttl_s),
            )
        )
    return ids


async def renew_lease(
    session: AsyncSession, *, order_id: UUID, owner: str, lease_ttl_s: float
) -> bool:
    """Extend ``owner``'s lease; False when another replica holds it now."""
    result = await session.execute(
        update(CustomerOrder)
        .where(CustomerOrder.id == order_id, CustomerOrder.lease_owner == owner)
        .values(lease_expires_at=func.now() + timedelta(seconds=lease_ttl_s))
        .returning(CustomerOrder.id)
    )
    return result.first() is not None


async def release_lease(
    session: AsyncSession,
    *,
    order_id: UUID,
    owner: str,
    retry_in_s: float = 0.0,
    locked: AnyOrder | None = None,
) -> None:
    """Give the saga up so any replica may take it (after ``retry_in_s``).

    ``locked`` is the order row when this transaction holds it ``FOR UPDATE`` and has
    checked that ``owner`` holds its lease (a saga settling): the release, at once, is
    then written by the row's own UPDATE at flush (settling changes the row anyway)
    instead of a statement of its own, and the loaded row shows the saga released.
    """
    if locked is not None:
        if locked.lease_owner != owner or retry_in_s:
            raise ValueError(f"order {order_id}: not leased to {owner}, or a delayed release")
        # None rather than now(): due at once, and the loaded row needs no refresh.
        locked.lease_owner = None
        locked.lease_expires_at = None
        return
    await session.execute(
        update(CustomerOrder)
        .where(CustomerOrder.id == order_id, CustomerOrder.lease_owner == owner)
        .values(
            lease_owner=None,
            lease_expires_at=func.now() + timedelta(seconds=retry_in_s),
        )
    )


_CONFIRMED = ("CONFIRMED", "PROCESSING", "SHIPPED", "DELIVERED")
_SETTLED_BY_SAGA = (*_CONFIRMED, "FAILED", "CANCELLED")


async def declined_in_row(
    session: AsyncSession, *, user_id: str, before: UUID, reason: str, limit: int
) -> int:
    """How many of the user's latest settled orders placed before ``before`` (at most
    ``limit``) failed with ``reason``, counting back until one did not."""
    reasons = await session.scalars(
        select(CustomerOrder.reason)
        .where(
            CustomerOrder.user_id == user_id,
            CustomerOrder.id < before,  # ids are time-ordered
            CustomerOrder.status.in_(_SETTLED_BY_SAGA),
        )
        .order_by(CustomerOrder.id.desc())
        .limit(limit)
    )
    count = 0
    for found in reasons:
        if found != reason:
            break
        count += 1
    return count


async def distinct_payment_tokens(session: AsyncSession, *, user_id: str, window_s: int) -> int:
    """Distinct payment tokens of the user's orders placed in the last ``window_s``."""
    token = CustomerOrder.payment_method["token"].astext
    count = await session.scalar(
        select(func.count(func.distinct(token))).where(
            CustomerOrder.user_id == user_id,
            CustomerOrder.created_at > func.now() - timedelta(seconds=window_s),
        )
    )
    return int(count or 0)


async def confirmed_order_count(session: AsyncSession, *, user_id: str) -> int:
    """How many of the user's orders were confirmed (and maybe shipped since)."""
    count = await session.scalar(
        select(func.count())
        .select_from(CustomerOrder)
        .where(CustomerOrder.user_id == user_id, CustomerOrder.status.in_(_CONFIRMED))
    )
    return int(count or 0)


# -- Export and erasure (orders_service.service.privacy) -----------------------------

#: What an erased order's shipping address becomes (the column is never NULL).
ERASED_ADDRESS: dict[str, Any] = {"erased": True}


async def orders_of_user(
    session: AsyncSession, user_id: str, *, for_update: bool = False
) -> Sequence[CustomerOrder]:
    """Every order of the user, oldest first (locked with ``for_update``)."""
    query = (
        select(CustomerOrder)
        .where(CustomerOrder.user_id == user_id)
        .order_by(CustomerOrder.created_at, CustomerOrder.id)
    )
    if for_update:
        query = query.with_for_update()
    return (await session.scalars(query)).all()


async def steps_of_orders(session: AsyncSession, order_ids: Sequence[UUID]) -> Sequence[SagaStep]:
    """The saga steps of these orders."""
    if not order_ids:
        return []
    rows = await session.scalars(
        select(SagaStep)
        .where(SagaStep.order_id.in_(order_ids))
        .order_by(SagaStep.created_at, SagaStep.id)
    )
    return rows.all()


async def pseudonymise_user(session: AsyncSession, user_id: str, *, pseudonym: str) -> int:
    """Cut the user's orders off the person: ``user_id`` becomes ``pseudonym``, the
    shipping and client addresses and the phone's pseudonym go; lines, totals and
    statuses stay. Also in saga steps
    and outbox rows (their ``data.user_id``). How many orders changed (0: done before)."""
    result = await session.execute(
        update(CustomerOrder)
        .where(CustomerOrder.user_id == user_id)
        .values(
            user_id=pseudonym,
            shipping_address=ERASED_ADDRESS,
            client_address=None,
            phone_ref=None,
        )
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(SagaStep)
        .where(SagaStep.user_id == user_id)
        .values(user_id=pseudonym)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.envelope["data"]["user_id"].astext == user_id)
        .values(
            envelope=func.jsonb_set(
                OutboxEvent.envelope,
                literal_column("'{data,user_id}'::text[]"),
                func.to_jsonb(cast(pseudonym, String)),
            )
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# -- Events staged in the transaction (the outbox; orders_service.events) -------------


def _base(order: AnyOrder) -> dict[str, Any]:
    return {"order_id": str(order.id), "user_id": order.user_id}


def receipt(order: AnyOrder) -> dict[str, Any]:
    """The order's priced content: enough to render a receipt."""
    return {
        **_base(order),
        "status": order.status,
        "lines": order.lines,
        "subtotal": order.subtotal,
        "total": order.total,
        "currency": order.currency,
    }


def stage_event(
    session: AsyncSession, order: AnyOrder, event_type: str, data: dict[str, Any]
) -> None:
    """Stage ``event_type`` in the session's transaction (``order_id``/``user_id`` added).

    Written by :func:`write_saga_changes` (the saga's step transactions) or when the
    transaction commits (:func:`_write_staged`), dropped if it does not commit.
    """
    envelope = EventEnvelope.new(type=event_type, source=SOURCE, data={**_base(order), **data})
    staged: list[tuple[UUID, str, str, str]] | None = session.info.get(_STAGED)
    if staged is None:
        staged = session.info[_STAGED] = []
        outbox_staged(session)  # wake the relay once this transaction commits
    # the envelope as JSON text, which PostgreSQL turns into JSONB
    staged.append((envelope.id, STREAM, envelope.type, envelope.model_dump_json()))


_STAGED = "orders_service.staged_events"
_OUTBOX: Table = OutboxEvent.__table__  # type: ignore[assignment]
#: Built once, run as one executemany per transaction (one round trip).
_INSERT_OUTBOX = insert(_OUTBOX).values(
    id=bindparam("p_id", type_=_OUTBOX.c.id.type),
    stream=bindparam("p_stream", type_=_OUTBOX.c.stream.type),
    event_type=bindparam("p_event_type", type_=_OUTBOX.c.event_type.type),
    envelope=cast(bindparam("p_envelope", type_=Text()), JSONB),
)


@event.listens_for(Session, "before_commit")
def _write_staged(session: Session) -> None:
    """Insert the events staged in the transaction that is about to commit."""
    rows = session.info.pop(_STAGED, None)
    if rows:
        params = [
            {"p_id": id_, "p_stream": stream, "p_event_type": type_, "p_envelope": envelope}
            for id_, stream, type_, envelope in rows
        ]
        session.connection().execute(_INSERT_OUTBOX, params if len(params) > 1 else params[0])


@event.listens_for(Session, "after_transaction_end")
def _drop_staged(session: Session, transaction: SessionTransaction) -> None:
    """A transaction that ended without committing takes its staged events and steps
    with it (and the driver connection it lent goes back with the session's)."""
    if transaction.parent is None:
        session.info.pop(_STAGED, None)
        session.info.pop(_STAGED_STEPS, None)
        session.info.pop(_DRIVER, None)


def stage_status_changed(session: AsyncSession, order: AnyOrder, previous: str) -> None:
    """``order.status_changed`` for the order's current status."""
    data: dict[str, Any] = {"status": order.status, "previous": previous}
    if order.tracking_number:
        data["tracking_number"] = order.tracking_number
    if order.reason and order.status in ("FAILED", "CANCELLED", "COMPENSATING"):
        data["reason"] = order.reason
    stage_event(session, order, "order.status_changed", data)


def stage_audit(session: AsyncSession, entry: AuditEntry) -> None:
    """Stage a staff action's audit entry (``audit.recorded`` on ``audit.events``)."""
    add_outbox_event(session, OutboxEvent, stream=AUDIT_STREAM, event=audit_event(entry))
