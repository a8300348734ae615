"""Every query of the inventory service (SQLAlchemy 2.0, async). Nothing here commits.

Stock is only ever changed by single conditional ``UPDATE`` statements: the database
checks the invariant and applies the change atomically, so no read-modify-write race
exists and no retry loop is needed (see docs/inventory.md).
"""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import ColumnElement, TextClause, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.domain.reservations import LineRequest, PricedLine, ProductSnapshot
from inventory_service.events import StockData
from inventory_service.models import (
    OutboxEvent,
    Product,
    Reservation,
    ReservationLine,
    Stock,
    StockAdjustment,
)
from storefront_kit.events import EventEnvelope, add_outbox_event, outbox_staged
from storefront_kit.ids import new_id

__all__ = [
    "HeldStockChange",
    "Hold",
    "ProductFilter",
    "Settled",
    "add_adjustment",
    "add_event",
    "adjust_stock",
    "change_held_stock",
    "export_products",
    "get_product",
    "get_product_by_sku",
    "get_reservation",
    "hold_reservation",
    "insert_product",
    "insert_stock",
    "list_adjustments",
    "list_products",
    "lock_expired_reservations",
    "lock_product",
    "product_exists",
    "reservation_lines",
    "set_reservation_status",
    "settle_reservation",
    "soft_delete_product",
    "update_product",
]

_STOCK_RETURNING = (Stock.sku, Stock.product_id, Stock.on_hand, Stock.reserved, Stock.version)


def add_event(session: AsyncSession, stream: str, event: EventEnvelope) -> None:
    """Stage an event in the session's transaction (relayed after the commit)."""
    add_outbox_event(session, OutboxEvent, stream=stream, event=event)


def _event_template(stream: str, event: EventEnvelope) -> dict[str, str]:
    """The parameters every stock statement stages its ``stock.changed`` from: the
    statement fills in each event's id and data (the one definition, ``_STOCK_CHANGED_DATA``)."""
    return {"stream": stream, "event_type": event.type, "envelope": event.model_dump_json()}


def _stock_out(row: Any) -> StockData:
    return StockData(
        sku=row.sku,
        product_id=row.product_id,
        on_hand=row.on_hand,
        reserved=row.reserved,
        available=row.on_hand - row.reserved,
        version=row.version,
    )


# --- products -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProductFilter:
    q: str | None = None
    category: str | None = None
    brand: str | None = None
    active: bool | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = [Product.deleted_at.is_(None)]
        if self.q:
            pattern = "%" + _escape_like(self.q) + "%"
            clauses.append(
                or_(
                    Product.name.ilike(pattern, escape="\\"),
                    Product.sku.ilike(pattern, escape="\\"),
                )
            )
        if self.category is not None:
            clauses.append(Product.category == self.category)
        if self.brand is not None:
            clauses.append(Product.brand == self.brand)
        if self.active is not None:
            clauses.append(Product.active.is_(self.active))
        return clauses


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def insert_product(session: AsyncSession, *, values: Mapping[str, Any]) -> Product | None:
    """Insert a product; ``None`` when its sku is taken (no exception, the transaction lives)."""
    statement = (
        insert(Product)
        .values(id=new_id(), **values)
        .on_conflict_do_nothing(index_elements=[Product.sku])
        .returning(Product)
    )
    result = await session.scalars(statement, execution_options={"populate_existing": True})
    return result.one_or_none()


async def insert_stock(
    session: AsyncSession, *, sku: str, product_id: UUID, on_hand: int
) -> StockData:
    statement = (
        insert(Stock)
        .values(sku=sku, product_id=product_id, on_hand=on_hand)
        .returning(*_STOCK_RETURNING)
    )
    return _stock_out((await session.execute(statement)).one())


async def get_product(session: AsyncSession, product_id: UUID) -> tuple[Product, StockData] | None:
    """A live (not deleted) product with its stock."""
    return await _one_product(session, Product.id == product_id)


async def get_product_by_sku(session: AsyncSession, sku: str) -> tuple[Product, StockData] | None:
    return await _one_product(session, Product.sku == sku)


async def _one_product(
    session: AsyncSession, where: ColumnElement[bool]
) -> tuple[Product, StockData] | None:
    statement = (
        select(Product, *_STOCK_RETURNING)
        .join(Stock, Stock.product_id == Product.id)
        .where(where, Product.deleted_at.is_(None))
    )
    row = (await session.execute(statement, execution_options={"populate_existing": True})).first()
    return None if row is None else (row[0], _stock_out(row))


async def product_exists(session: AsyncSession, product_id: UUID) -> bool:
    found = await session.scalar(
        select(Product.id).where(Product.id == product_id, Product.deleted_at.is_(None))
    )
    return found is not None


async def list_products(
    session: AsyncSession, *, filters: ProductFilter, offset: int, limit: int
) -> tuple[list[tuple[Product, StockData]], int]:
    """One page of live products, newest first, and how many match in all."""
    clauses = filters.clauses()
    total = await session.scalar(select(func.count()).select_from(Product).where(*clauses))
    statement = (
        select(Product, *_STOCK_RETURNING)
        .join(Stock, Stock.product_id == Product.id)
        .where(*clauses)
        .order_by(Product.id.desc())
        .offset(offset)
        .limit(limit)
    )
    rows = (await session.execute(statement)).all()
    return [(row[0], _stock_out(row)) for row in rows], int(total or 0)


async def export_products(
    session: AsyncSession, *, after: str | None, limit: int
) -> list[tuple[Product, StockData]]:
    """Live products in sku order after ``after`` (keyset paging: stable under writes)."""
    clauses: list[ColumnElement[bool]] = [Product.deleted_at.is_(None)]
    if after is not None:
        clauses.append(Product.sku > after)
    statement = (
        select(Product, *_STOCK_RETURNING)
        .join(Stock, Stock.product_id == Product.id)
        .where(*clauses)
        .order_by(Product.sku)
        .limit(limit)
    )
    rows = (await session.execute(statement)).all()
    return [(row[0], _stock_out(row)) for row in rows]


async def update_product(
    session: AsyncSession,
    *,
    product_id: UUID,
    expected_versions: Collection[int] | None,
    changes: Mapping[str, Any],
) -> Product | None:
    """Apply ``changes`` if the product is live and still at one of ``expected_versions``.

    Optimistic: one conditional UPDATE, ``None`` when the row is gone or was changed
    by someone else since the caller read it (no lock is held between read and write).
    """
    where = [Product.id == product_id, Product.deleted_at.is_(None)]
    if expected_versions is not None:
        where.append(Product.version.in_(sorted(expected_versions)))
    statement = (
        update(Product)
        .where(*where)
        .values(**changes, version=Product.version + 1, updated_at=func.now())
        .returning(Product)
    )
    result = await session.scalars(
        statement,
        execution_options={"synchronize_session": False, "populate_existing": True},
    )
    return result.one_or_none()


async def lock_product(session: AsyncSession, product_id: UUID) -> Product | None:
    """The live product, locked until the transaction ends (what an audited change saw)."""
    return await session.scalar(
        select(Product)
        .where(Product.id == product_id, Product.deleted_at.is_(None))
        .with_for_update(),
        execution_options={"populate_existing": True},
    )


async def soft_delete_product(
    session: AsyncSession, *, product_id: UUID, expected_versions: Collection[int] | None
) -> Product | None:
    """Mark the product deleted (and inactive); ``None`` when gone or stale."""
    return await update_product(
        session,
        product_id=product_id,
        expected_versions=expected_versions,
        changes={"deleted_at": func.now(), "active": False},
    )


def add_adjustment(
    session: AsyncSession, *, stock: StockData, delta: int, reason: str, actor: str
) -> StockAdjustment:
    row = StockAdjustment(
        id=new_id(),
        sku=stock.sku,
        product_id=stock.product_id,
        delta=delta,
        reason=reason,
        actor=actor,
        on_hand_after=stock.on_hand,
        reserved_after=stock.reserved,
    )
    session.add(row)
    return row


async def list_adjustments(
    session: AsyncSession, *, sku: str, limit: int
) -> Sequence[StockAdjustment]:
    statement = (
        select(StockAdjustment)
        .where(StockAdjustment.sku == sku)
        .order_by(StockAdjustment.created_at.desc(), StockAdjustment.id.desc())
        .limit(limit)
    )
    return (await session.scalars(statement)).all()


# --- reservations ---------------------------------------------------------------------


def _jsonb_object(model: type[BaseModel], expressions: Mapping[str, str]) -> str:
    """``jsonb_build_object(...)`` with one key per field of ``model``, in field order.

    A field takes the column of its own name unless ``expressions`` gives its SQL; an
    expression for no field is refused, so a renamed field cannot leave one behind.
    """
    fields = model.model_fields
    unknown = set(expressions) - set(fields)
    if unknown:
        raise ValueError(f"{model.__name__} has no field {sorted(unknown)}")
    assert all(name.isidentifier() for name in fields)  # safe as SQL keys and columns
    pairs = ", ".join(f"'{name}', {expressions.get(name, name)}" for name in fields)
    return f"jsonb_build_object({pairs})"


# stock.changed's data is built by the database from the changed row (the statement
# that changes the stock also stages the event), from the one payload definition
# (StockData, as events.stock_changed dumps it).
_STOCK_CHANGED_DATA = _jsonb_object(StockData, {"available": "on_hand - reserved"})


async def get_reservation(session: AsyncSession, order_id: UUID) -> Reservation | None:
    statement = select(Reservation).where(Reservation.order_id == order_id)
    result = await session.scalars(statement, execution_options={"populate_existing": True})
    return result.one_or_none()


_HOLD_RESERVATION = text(
    f"""
    WITH wanted AS (
        SELECT * FROM unnest(
            CAST(:skus AS varchar[]), CAST(:qtys AS integer[]), CAST(:event_ids AS uuid[])
        ) AS w(sku, qty, event_id)
    ), snapshot AS (
        -- What pricing needs, and the units available, read without a lock.
        SELECT w.sku, w.qty, w.event_id, p.name, p.price, p.currency,
               p.active AND p.deleted_at IS NULL AS sellable,
               coalesce(s.on_hand - s.reserved, 0) AS available
        FROM wanted w JOIN product p ON p.sku = w.sku LEFT JOIN stock s ON s.sku = p.sku
    ), refused AS (
        -- Pricing refuses (an unknown or unsellable sku, mixed currencies), or the
        -- snapshot already shows a line short: no row is locked (a sold-out hot sku
        -- would otherwise still lock for every late request).
        SELECT 1 WHERE (SELECT count(*) FROM snapshot) < (SELECT count(*) FROM wanted)
            OR EXISTS (SELECT 1 FROM snapshot WHERE NOT sellable OR available < qty)
            OR (SELECT count(DISTINCT currency) FROM snapshot) > 1
    ), locked AS (
        -- Row locks taken in sku order, so concurrent multi-line holds cannot deadlock;
        -- a locked row is read as committed by whoever held it before.
        SELECT s.sku, s.on_hand - s.reserved AS available
        FROM stock s JOIN wanted w ON w.sku = s.sku
        WHERE NOT EXISTS (SELECT 1 FROM refused)
        ORDER BY s.sku
        FOR UPDATE OF s
    ), short AS (
        SELECT w.sku FROM wanted w LEFT JOIN locked l ON l.sku = w.sku
        WHERE l.available IS NULL OR l.available < w.qty
    ), claimed AS (
        INSERT INTO reservation (id, order_id, status, request_hash, total, currency, expires_at)
        SELECT :id, :order_id, 'reserved', :request_hash,
               (SELECT sum(qty * price) FROM snapshot), (SELECT min(currency) FROM snapshot),
               now() + CAST(:ttl_s AS integer) * interval '1 second'
        WHERE NOT EXISTS (SELECT 1 FROM refused) AND NOT EXISTS (SELECT 1 FROM short)
        ON CONFLICT (order_id) DO NOTHING
        RETURNING id, expires_at
    ), lines AS (
        INSERT INTO reservation_line (reservation_id, sku, qty, unit_price, currency, name)
        SELECT claimed.id, n.sku, n.qty, n.price, n.currency, n.name
        FROM claimed, snapshot n
    ), held AS (
        UPDATE stock s
        SET reserved = s.reserved + w.qty, version = s.version + 1, updated_at = now()
        FROM wanted w
        WHERE s.sku = w.sku AND EXISTS (SELECT 1 FROM claimed)
        RETURNING s.sku, s.product_id, s.on_hand, s.reserved, s.version, w.event_id
    ), staged AS (
        INSERT INTO outbox_event (id, stream, event_type, envelope)
        SELECT held.event_id, :stream, :event_type,
               CAST(:envelope AS jsonb) || jsonb_build_object(
                   'id', held.event_id, 'data', {_STOCK_CHANGED_DATA})
        FROM held
    )
    SELECT (SELECT expires_at FROM claimed) AS expires_at,
           ARRAY(SELECT sku FROM short ORDER BY sku) AS short_skus,
           n.sku, n.name, n.price, n.currency, n.sellable, n.available
    FROM (SELECT 1) AS one LEFT JOIN snapshot n ON true
    """  # noqa: S608
)


@dataclass(frozen=True, slots=True)
class Hold:
    """What :func:`hold_reservation` read and did: the products of the lines as its
    snapshot saw them (unknown skus absent), held (``expires_at``) or not, and which skus
    the locked re-check found short (none short and nothing held: the snapshot refused,
    or the order already had a reservation)."""

    products: dict[str, ProductSnapshot]
    expires_at: datetime | None
    short_skus: list[str]


async def hold_reservation(
    session: AsyncSession,
    *,
    order_id: UUID,
    request_hash: str,
    lines: Sequence[LineRequest],
    ttl_s: int,
    stream: str,
    event: EventEnvelope,
) -> Hold:
    """Price ``lines`` from the catalogue and hold every one, or change nothing.

    One statement: read each line's product and available units without a lock (the
    snapshot); if pricing would refuse (``domain.reservations.price_lines``: an unknown
    or unsellable sku, mixed currencies) or the snapshot already shows a line short,
    stop there. Else lock the stock rows (sku order), check every line against what is
    available *after* the lock, and only if all are met insert the reservation priced
    from the snapshot and its lines (unless the order already has one: ``ON CONFLICT DO
    NOTHING`` waits for a concurrent insert of the same order), add the quantities to
    ``reserved`` and stage one ``stock.changed`` per sku (``event`` is the envelope
    template; each gets its own id). Run outside a transaction, its row locks last only
    as long as the statement. The caller prices the lines from the snapshot answered,
    as the statement did.
    """
    result = await session.execute(
        _HOLD_RESERVATION,
        {
            "id": new_id(),
            "order_id": order_id,
            "request_hash": request_hash,
            "ttl_s": ttl_s,
            "skus": [line.sku for line in lines],
            "qtys": [line.qty for line in lines],
            "event_ids": [new_id() for _ in lines],
            **_event_template(stream, event),
        },
    )
    rows = result.all()
    first = rows[0]
    if first.expires_at is not None:
        outbox_staged(session)
    return Hold(
        products={
            row.sku: ProductSnapshot(
                sku=row.sku,
                name=row.name,
                price=row.price,
                currency=row.currency,
                sellable=bool(row.sellable),
                available=row.available,
            )
            for row in rows
            if row.sku is not None
        },
        expires_at=first.expires_at,
        short_skus=list(first.short_skus),
    )


#: A UUIDv7 made by the database (PostgreSQL 16 has no ``uuidv7()``): the current
#: millisecond in the first 48 bits over a random UUID, version bits set to 7. For the
#: events of a statement that learns how many it stages only as it runs.
_UUIDV7 = (
    "CAST(encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing"
    " substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)"
    " FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex') AS uuid)"
)


def _settle_statement(assignments: str) -> TextClause:
    # The f-string only ever receives the module constants below, never input.
    return text(
        f"""
        WITH target AS (
            -- Waits for a concurrent settlement of the same order, then reads its outcome.
            SELECT id, status, expires_at, total, currency
            FROM reservation WHERE order_id = :order_id
            FOR UPDATE
        ), flipped AS (
            UPDATE reservation r SET status = :status, updated_at = now()
            FROM target t
            WHERE r.id = t.id AND t.status = ANY(CAST(:applies_from AS varchar[]))
              -- never a status moved without the stock of every line (rows are never
              -- deleted; if one were, nothing moves and the caller sees it did not)
              AND NOT EXISTS (
                  SELECT 1 FROM reservation_line l LEFT JOIN stock s ON s.sku = l.sku
                  WHERE l.reservation_id = t.id AND s.sku IS NULL
              )
            RETURNING r.id
        ), locked AS (
            -- The stock rows of a reservation that moved, locked in sku order like every
            -- multi-row stock change (two settlements or holds cannot deadlock).
            SELECT s.sku, l.qty
            FROM flipped f
            JOIN reservation_line l ON l.reservation_id = f.id
            JOIN stock s ON s.sku = l.sku
            ORDER BY s.sku
            FOR UPDATE OF s
        ), changed AS (
            UPDATE stock s SET {assignments}, version = s.version + 1, updated_at = now()
            FROM locked l
            WHERE s.sku = l.sku
            RETURNING s.sku, s.product_id, s.on_hand, s.reserved, s.version
        ), stamped AS (
            SELECT {_UUIDV7} AS event_id, changed.* FROM changed
        ), staged AS (
            INSERT INTO outbox_event (id, stream, event_type, envelope)
            SELECT event_id, :stream, :event_type,
                   CAST(:envelope AS jsonb) || jsonb_build_object(
                       'id', event_id, 'data', {_STOCK_CHANGED_DATA})
            FROM stamped
        ), lines AS (
            SELECT array_agg(l.sku ORDER BY l.sku) AS skus,
                   array_agg(l.qty ORDER BY l.sku) AS qtys,
                   array_agg(l.unit_price ORDER BY l.sku) AS unit_prices,
                   array_agg(l.currency ORDER BY l.sku) AS currencies,
                   array_agg(l.name ORDER BY l.sku) AS names
            FROM target t JOIN reservation_line l ON l.reservation_id = t.id
        )
        SELECT t.status, EXISTS (SELECT 1 FROM flipped) AS applied,
               t.expires_at, t.total, t.currency,
               lines.skus, lines.qtys, lines.unit_prices, lines.currencies, lines.names
        FROM target t, lines
        """  # noqa: S608
    )


#: What a hold's settlement does to its stock rows: ``release`` gives the hold back (the
#: check constraint refuses ``reserved`` below zero), ``commit`` turns it into a sale (the
#: units leave both ``on_hand`` and ``reserved``), ``restock`` puts sold units back on
#: hand (a committed order was cancelled).
HeldStockChange = Literal["release", "commit", "restock"]
_SETTLEMENTS: dict[HeldStockChange, TextClause] = {
    "release": _settle_statement("reserved = s.reserved - l.qty"),
    "commit": _settle_statement("on_hand = s.on_hand - l.qty, reserved = s.reserved - l.qty"),
    "restock": _settle_statement("on_hand = s.on_hand + l.qty"),
}


@dataclass(frozen=True, slots=True)
class Settled:
    """What :func:`settle_reservation` found and did: the reservation's status as it
    found it (under its row lock), whether it moved it, and its lines in sku order."""

    status: str
    applied: bool
    expires_at: datetime
    total: int
    currency: str
    lines: list[PricedLine]


async def settle_reservation(
    session: AsyncSession,
    change: HeldStockChange,
    *,
    order_id: UUID,
    applies_from: Sequence[str],
    status: str,
    stream: str,
    event: EventEnvelope,
) -> Settled | None:
    """Move the order's reservation to ``status`` if it is in one of ``applies_from``,
    with ``change`` applied to the stock of each line and one ``stock.changed`` each;
    ``None`` when the order has no reservation.

    One statement: lock the reservation row (waiting for a concurrent settlement of
    it, whose outcome it then reads), flip its status, lock the lines' stock rows in
    sku order, change them and stage their events (``event`` is the envelope
    template; each gets its own id), and answer the reservation with its lines. It
    is atomic on its own: run outside a transaction, its row locks last only as long
    as the statement.
    """
    result = await session.execute(
        _SETTLEMENTS[change],
        {
            "order_id": order_id,
            "status": status,
            "applies_from": list(applies_from),
            **_event_template(stream, event),
        },
    )
    row = result.first()
    if row is None:
        return None
    if row.applied:
        outbox_staged(session)
    return Settled(
        status=row.status,
        applied=row.applied,
        expires_at=row.expires_at,
        total=row.total,
        currency=row.currency,
        lines=[
            PricedLine(sku=sku, qty=qty, unit_price=price, currency=currency, name=name)
            for sku, qty, price, currency, name in zip(
                row.skus, row.qtys, row.unit_prices, row.currencies, row.names, strict=True
            )
        ],
    )


async def reservation_lines(
    session: AsyncSession, reservation_ids: Sequence[UUID]
) -> list[ReservationLine]:
    statement = (
        select(ReservationLine)
        .where(ReservationLine.reservation_id.in_(reservation_ids))
        .order_by(ReservationLine.reservation_id, ReservationLine.sku)
    )
    return list((await session.scalars(statement)).all())


async def set_reservation_status(
    session: AsyncSession, *, reservation_ids: Sequence[UUID], status: str
) -> None:
    await session.execute(
        update(Reservation)
        .where(Reservation.id.in_(reservation_ids))
        .values(status=status, updated_at=func.now()),
        execution_options={"synchronize_session": False},
    )


def _stock_change(assignments: str, condition: str = "") -> TextClause:
    # The change and its stock.changed event are one statement: the row lock is held
    # from here to COMMIT only, and the event cannot exist without the change.
    # The f-string only ever receives the module constants below, never input.
    return text(
        f"""
        WITH changed AS (
            UPDATE stock SET {assignments}, version = version + 1, updated_at = now()
            WHERE sku = :sku {condition}
            RETURNING sku, product_id, on_hand, reserved, version
        ), staged AS (
            INSERT INTO outbox_event (id, stream, event_type, envelope)
            SELECT :event_id, :stream, :event_type,
                   CAST(:envelope AS jsonb) || jsonb_build_object('data', {_STOCK_CHANGED_DATA})
            FROM changed
        )
        SELECT sku, product_id, on_hand, reserved, version FROM changed
        """  # noqa: S608
    )


_RELEASE = _stock_change("reserved = reserved - :qty")
_COMMIT = _stock_change("on_hand = on_hand - :qty, reserved = reserved - :qty")
_RESTOCK = _stock_change("on_hand = on_hand + :qty")
_ADJUST = _stock_change("on_hand = on_hand + :qty", "AND on_hand + :qty >= reserved")


async def _change_stock(
    session: AsyncSession,
    statement: TextClause,
    *,
    sku: str,
    qty: int,
    stream: str,
    event: EventEnvelope,
) -> StockData | None:
    """Run a stock change with its event (``event.data`` is filled in by the database)."""
    result = await session.execute(
        statement,
        {
            "sku": sku,
            "qty": qty,
            "event_id": event.id,
            **_event_template(stream, event),
        },
    )
    row = result.first()
    if row is None:
        return None
    outbox_staged(session)
    return _stock_out(row)


_HELD_STOCK_CHANGES: dict[HeldStockChange, TextClause] = {
    "release": _RELEASE,
    "commit": _COMMIT,
    "restock": _RESTOCK,
}


async def change_held_stock(
    session: AsyncSession,
    change: HeldStockChange,
    *,
    sku: str,
    qty: int,
    stream: str,
    event: EventEnvelope,
) -> StockData:
    """Apply ``change`` to the stock row of a hold's ``sku`` (it must be there)."""
    statement = _HELD_STOCK_CHANGES[change]
    changed = await _change_stock(session, statement, sku=sku, qty=qty, stream=stream, event=event)
    assert changed is not None, f"stock row {sku} vanished"
    return changed


async def adjust_stock(
    session: AsyncSession, *, sku: str, delta: int, stream: str, event: EventEnvelope
) -> StockData | None:
    """Add ``delta`` on hand unless that would leave less than is reserved."""
    return await _change_stock(session, _ADJUST, sku=sku, qty=delta, stream=stream, event=event)


async def lock_expired_reservations(session: AsyncSession, *, limit: int) -> list[Reservation]:
    """Expired live holds, locked; rows another replica holds are skipped, not waited for."""
    statement = (
        select(Reservation)
        .where(Reservation.status == "reserved", Reservation.expires_at <= func.now())
        .order_by(Reservation.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.scalars(statement, execution_options={"populate_existing": True})
    return list(result.all())
