"""How an order changes status: every change goes through :func:`transition`.

A status change is more than the column. The row's ``version`` goes up (clients and
staff compare it), ``order.status_changed`` is staged in the same transaction (the
outbox: the event leaves if and only if the change commits), a failing or cancelled
order records why, and a saga that ends hands its lease back in that same transaction,
so no replica ever sees a settled order still leased. The saga's steps, its
compensation and the staff and cancel use cases all call it; none of them writes
``order.status`` on its own.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from orders_service import repository
from orders_service.domain.saga import OrderStatus
from orders_service.repository import AnyOrder, stage_status_changed

__all__ = ["transition"]


async def transition(
    session: AsyncSession,
    order: AnyOrder,
    status: OrderStatus,
    *,
    previous: str | None = None,
    outcome: OrderStatus | None = None,
    reason: str | None = None,
    detail: str | None = None,
    release_lease_of: str | None = None,
) -> None:
    """Move ``order`` (locked by the caller's transaction) to ``status``.

    ``order`` is a mapped row (the session's flush writes it) or the saga's plain
    :class:`~orders_service.repository.OrderRow` (its caller writes it back).

    ``previous`` is the status it had when the caller set ``status`` itself so that
    events staged first carry it (a saga step's own events); a status that does not
    change bumps nothing. ``outcome`` turns on compensation: how it will end, ``reason``
    and ``detail`` why. ``release_lease_of`` hands that replica's lease back (the saga
    ends here).
    """
    if previous is None:
        previous = order.status
    order.status = status
    if outcome is not None:
        order.outcome = outcome
        order.reason = reason
        order.reason_detail = detail[:500] if detail else None
    if status != previous:
        order.version += 1
        stage_status_changed(session, order, previous)
    if release_lease_of is not None:
        await repository.release_lease(
            session, order_id=order.id, owner=release_lease_of, locked=order
        )
