"""``create_shipment``: a parcel is booked with the shipping provider; undone by
``cancel_shipment``."""

from sqlalchemy.ext.asyncio import AsyncSession

from orders_service.clients.errors import ProviderRejected
from orders_service.clients.shipment import build_shipment_request
from orders_service.domain.saga import Reason, Step, StepStatus
from orders_service.repository import OrderRow
from orders_service.service.saga.steps.base import (
    Alert,
    SagaAction,
    SagaStep,
    StepContext,
    StepOutcome,
)

__all__ = ["CancelShipment", "CreateShipment"]


class CreateShipment(SagaAction):
    """Book the parcel; its tracking number becomes the order's."""

    step = Step.CREATE_SHIPMENT
    unavailable = Reason.SHIPPING_UNAVAILABLE
    circuit_open = Reason.SHIPPING_CIRCUIT_OPEN

    def rejected(self, exc: ProviderRejected) -> Reason:
        return Reason.SHIPMENT_REJECTED

    async def perform(self, order: OrderRow, ctx: StepContext) -> StepOutcome:
        request = build_shipment_request(order, item_weight_grams=ctx.settings.item_weight_grams)
        shipment = await ctx.shipping.create(request, key=self.idempotency_key(order))
        return StepOutcome(
            StepStatus.SUCCEEDED,
            {
                "shipment_id": shipment.id,
                "tracking_number": shipment.tracking_number,
                "label_url": shipment.label_url,
                "carrier": shipment.carrier,
            },
        )

    def apply(self, session: AsyncSession, order: OrderRow, outcome: StepOutcome) -> list[Alert]:
        result = outcome.result
        order.shipment_id = str(result["shipment_id"])
        order.tracking_number = str(result["tracking_number"])
        order.label_url = result.get("label_url")
        return []


class CancelShipment(SagaStep):
    """Cancel the booked parcel; when the booking's outcome is unknown, every parcel the
    provider holds for the order."""

    step = Step.CANCEL_SHIPMENT

    async def perform(self, order: OrderRow, ctx: StepContext) -> StepOutcome:
        if order.shipment_id:
            ids = [order.shipment_id]
        else:  # the booking's outcome is unknown: ask the provider
            found = await ctx.shipping.shipments_for_order(order_id=str(order.id))
            ids = [s.id for s in found if s.status != "cancelled"]
        if not ids:
            return StepOutcome(StepStatus.SKIPPED, {"note": "no shipment"})
        for shipment_id in ids:
            await ctx.shipping.cancel(
                shipment_id=shipment_id, key=self.idempotency_key(order, shipment_id)
            )
        return StepOutcome(StepStatus.SUCCEEDED, {"cancelled": ids})
