"""``reserve_inventory``: inventory holds and prices the order's stock; undone by
``release_inventory`` (or a restock once the hold became a sale)."""

from sqlalchemy.ext.asyncio import AsyncSession

from orders_service.clients.errors import ProviderRejected
from orders_service.domain.saga import Reason, Step, StepStatus
from orders_service.repository import OrderRow, receipt, stage_event
from orders_service.service.saga.steps.base import (
    Alert,
    SagaAction,
    SagaStep,
    StepContext,
    StepOutcome,
)

__all__ = ["ReleaseInventory", "ReserveInventory"]

_REJECTIONS = {
    "insufficient_stock": Reason.OUT_OF_STOCK,
    "unknown_sku": Reason.UNKNOWN_SKU,
    "product_unavailable": Reason.PRODUCT_UNAVAILABLE,
    "mixed_currency": Reason.MIXED_CURRENCY,
}


class ReserveInventory(SagaAction):
    """Hold every line or none; inventory's prices become the order's lines and total."""

    step = Step.RESERVE_INVENTORY
    unavailable = Reason.INVENTORY_UNAVAILABLE

    def rejected(self, exc: ProviderRejected) -> Reason:
        return _REJECTIONS.get(exc.code, Reason.RESERVATION_REJECTED)

    async def perform(self, order: OrderRow, ctx: StepContext) -> StepOutcome:
        reservation = await ctx.inventory.reserve(
            order_id=order.id, items=order.items, ttl_s=ctx.settings.reservation_ttl_s
        )
        return StepOutcome(
            StepStatus.SUCCEEDED,
            {
                "lines": reservation.lines,
                "total": reservation.total,
                "currency": reservation.currency,
            },
        )

    def apply(self, session: AsyncSession, order: OrderRow, outcome: StepOutcome) -> list[Alert]:
        result = outcome.result
        order.lines = result["lines"]
        order.subtotal = order.total = int(result["total"])
        order.currency = str(result["currency"])
        created = receipt(order)
        stage_event(session, order, "order.created", created)
        return [("order.created", created)]


class ReleaseInventory(SagaStep):
    """Give the held stock back; a hold already sold (a confirmed order cancelled) is
    restocked instead."""

    step = Step.RELEASE_INVENTORY

    async def perform(self, order: OrderRow, ctx: StepContext) -> StepOutcome:
        try:
            status = await ctx.inventory.release(order_id=order.id)
        except ProviderRejected as exc:
            if exc.status != 409:
                raise
            # The hold became a sale (the order was confirmed): return its units.
            status = await ctx.inventory.restock(order_id=order.id)
            return StepOutcome(StepStatus.SUCCEEDED, {"status": status})
        if status is None:
            return StepOutcome(StepStatus.SKIPPED, {"note": "no reservation"})
        return StepOutcome(StepStatus.SUCCEEDED, {"status": status})
