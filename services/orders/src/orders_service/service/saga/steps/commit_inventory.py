"""``commit_inventory``: the hold becomes a sale. The final step: nothing after it can
fail, so it has no compensation, and an unreachable inventory is waited out."""

from orders_service.clients.errors import ProviderRejected
from orders_service.domain.saga import Reason, Step, StepStatus
from orders_service.repository import OrderRow
from orders_service.service.saga.steps.base import SagaAction, StepContext, StepOutcome

__all__ = ["CommitInventory"]


class CommitInventory(SagaAction):
    """Turn the reservation into a sale."""

    step = Step.COMMIT_INVENTORY
    unavailable = Reason.INVENTORY_UNAVAILABLE
    # Payment is taken and the parcel booked: an inventory hiccup at the very last step
    # is waited out (the reservation lasts minutes), not compensated.
    wait_out_unavailable = True

    def rejected(self, exc: ProviderRejected) -> Reason:
        return Reason.RESERVATION_EXPIRED

    async def perform(self, order: OrderRow, ctx: StepContext) -> StepOutcome:
        status = await ctx.inventory.commit(order_id=order.id)
        return StepOutcome(StepStatus.SUCCEEDED, {"status": status})
