"""Reserve, release, commit and expire: every stock change with its rows and its events,
in the caller's one transaction."""

from collections import defaultdict
from collections.abc import Sequence
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory_service import events, repository
from inventory_service.domain.reservations import (
    COMMIT,
    EXPIRED,
    RELEASE,
    RESERVED,
    RESTOCK,
    LineRequest,
    PricedLine,
    Settlement,
    check_limits,
    price_lines,
    request_fingerprint,
    snapshot_shortages,
)
from inventory_service.errors import (
    AppError,
    InsufficientStock,
    ReservationMismatch,
    ReservationNotFound,
)
from inventory_service.models import Reservation, ReservationLine
from inventory_service.schemas import ReservationLineOut, ReservationOut
from storefront_kit.db import unit_of_work

__all__ = ["ReserveResult", "commit", "release", "reserve", "restock", "sweep_expired"]


class ReserveResult:
    """The reservation, and whether this call created it (else: a replayed retry)."""

    __slots__ = ("created", "reservation")

    def __init__(self, reservation: ReservationOut, *, created: bool) -> None:
        self.reservation = reservation
        self.created = created


def _line_out(line: ReservationLine | PricedLine) -> ReservationLineOut:
    return ReservationLineOut(
        sku=line.sku,
        qty=line.qty,
        unit_price=line.unit_price,
        currency=line.currency,
        name=line.name,
    )


def _out(
    reservation: Reservation, lines: Sequence[ReservationLine] | Sequence[PricedLine]
) -> ReservationOut:
    return ReservationOut(
        order_id=reservation.order_id,
        status=reservation.status,
        expires_at=reservation.expires_at,
        lines=[_line_out(line) for line in lines],
        total=reservation.total,
        currency=reservation.currency,
    )


async def _replay(
    session: AsyncSession, reservation: Reservation, fingerprint: str
) -> ReserveResult:
    if reservation.request_hash != fingerprint:
        raise ReservationMismatch(
            f"Order {reservation.order_id} already has a reservation for different items.",
            order_id=str(reservation.order_id),
        )
    lines = await repository.reservation_lines(session, [reservation.id])
    return ReserveResult(_out(reservation, lines), created=False)


async def reserve(
    session: AsyncSession,
    *,
    order_id: UUID,
    lines: Sequence[LineRequest],
    ttl_s: int | None,
    default_ttl_s: int,
    max_ttl_s: int,
    max_lines: int,
) -> ReserveResult:
    """Hold every line or none; idempotent per order (same request, same answer).

    Runs without a transaction (``session`` is switched to autocommit before its first
    statement): the hold is one statement, and a transaction around it would keep the
    hot rows locked across a round trip to this process, which under load is queued
    behind every other request in the event loop.
    """
    check_limits(lines, ttl_s, max_lines=max_lines, max_ttl_s=max_ttl_s)
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    fingerprint = request_fingerprint(lines, ttl_s)
    # One statement reads the products (the snapshot, no lock) and, unless pricing
    # refuses or the snapshot already shows a line short, holds every line under its
    # row lock: the rules below judge what it read, as it did.
    hold = await repository.hold_reservation(
        session,
        order_id=order_id,
        request_hash=fingerprint,
        lines=sorted(lines, key=lambda line: line.sku),
        ttl_s=ttl_s or default_ttl_s,
        stream=events.STREAM,
        event=events.stock_changed(),
    )
    try:
        quote = price_lines(lines, hold.products)
    except AppError:
        # A retry must replay even if a product changed since the order reserved it.
        existing = await repository.get_reservation(session, order_id)
        if existing is not None:
            return await _replay(session, existing, fingerprint)
        raise
    if hold.expires_at is not None:
        reservation = ReservationOut(
            order_id=order_id,
            status=RESERVED,
            expires_at=hold.expires_at,
            lines=[_line_out(line) for line in quote.lines],
            total=quote.total,
            currency=quote.currency,
        )
        return ReserveResult(reservation, created=True)
    # Nothing held: the snapshot (read without a lock) already showed a line short and
    # no row was locked, the locked re-check found one short, or a retry of an order
    # that holds already (its own hold may be what made the stock short).
    short = snapshot_shortages(lines, hold.products) or hold.short_skus
    existing = await repository.get_reservation(session, order_id)
    if existing is not None:
        return await _replay(session, existing, fingerprint)
    assert short, "ON CONFLICT saw a reservation that is not there"
    raise InsufficientStock(short)


#: How each held-stock change settles a reservation (``domain.reservations``).
_SETTLEMENTS: dict[repository.HeldStockChange, Settlement] = {
    "release": RELEASE,
    "commit": COMMIT,
    "restock": RESTOCK,
}


async def _settle(
    session: AsyncSession, order_id: UUID, change: repository.HeldStockChange
) -> ReservationOut:
    """Settle a reservation by ``change``: its stock changed line by line (sku order) with
    an event each, or nothing when its settlement says it is already done.

    One statement (``repository.settle_reservation``), run without a transaction like
    the reserve's hold: it moves the reservation only from the status the settlement
    applies to, and answers the status it found under the row lock, which the
    settlement then judges (a no-op, or the 409 of a settled reservation).
    """
    settlement = _SETTLEMENTS[change]
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    settled = await repository.settle_reservation(
        session,
        change,
        order_id=order_id,
        applies_from=(settlement.applies_to,),
        status=settlement.status,
        stream=events.STREAM,
        event=events.stock_changed(),
    )
    if settled is None:
        raise ReservationNotFound(f"No reservation for order {order_id}.")
    if not settled.applied:
        outcome = settlement.transition(settled.status)  # a settled one's 409 raises here
        if outcome != "noop":  # a line's stock row is gone: nothing was changed
            raise RuntimeError(f"reservation of {order_id} could not move from {settled.status}")
    return ReservationOut(
        order_id=order_id,
        status=settlement.status if settled.applied else settled.status,
        expires_at=settled.expires_at,
        lines=[_line_out(line) for line in settled.lines],
        total=settled.total,
        currency=settled.currency,
    )


async def release(session: AsyncSession, *, order_id: UUID) -> ReservationOut:
    """Give the held units back; releasing twice (or after expiry) changes nothing."""
    return await _settle(session, order_id, "release")


async def commit(session: AsyncSession, *, order_id: UUID) -> ReservationOut:
    """Turn the hold into a sale; committing twice changes nothing."""
    return await _settle(session, order_id, "commit")


async def restock(session: AsyncSession, *, order_id: UUID) -> ReservationOut:
    """Give a committed sale back to stock (its order was cancelled); twice changes nothing."""
    return await _settle(session, order_id, "restock")


async def sweep_expired(sessionmaker: async_sessionmaker[AsyncSession], *, batch_size: int) -> int:
    """Release one batch of expired holds in one transaction; returns how many.

    ``FOR UPDATE SKIP LOCKED`` gives each replica's sweeper a disjoint batch, and an
    API release/commit of the same order waits for the row lock and then sees
    ``expired``: a hold is given back exactly once.
    """
    async with unit_of_work(sessionmaker) as session:
        expired = await repository.lock_expired_reservations(session, limit=batch_size)
        if not expired:
            return 0
        ids = [reservation.id for reservation in expired]
        per_sku: dict[str, int] = defaultdict(int)
        for line in await repository.reservation_lines(session, ids):
            per_sku[line.sku] += line.qty
        for sku in sorted(per_sku):  # sku order, like every other multi-row stock change
            await repository.change_held_stock(
                session,
                "release",
                sku=sku,
                qty=per_sku[sku],
                stream=events.STREAM,
                event=events.stock_changed(),
            )
        await repository.set_reservation_status(session, reservation_ids=ids, status=EXPIRED)
        return len(expired)
