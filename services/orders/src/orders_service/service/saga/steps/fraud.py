"""``screen_fraud`` and ``check_fraud``: the configured fraud rules, before anything is
reserved and once inventory priced the order (docs/orders.md "Fraud rules").

Allowed: the step succeeds (``skipped`` when no rule applies at that stage). Refused:
the step is rejected, the order ends FAILED ``fraud_refused`` (after ``screen_fraud``
nothing was reserved; after ``check_fraud`` the stock is released). Held: the step is
``held`` and the order waits ON_HOLD for staff (``POST /api/v1/admin/orders/{id}/review``).
Neither step changes anything outside the orders service, so neither has a compensation.
"""

from typing import ClassVar

from orders_service.clients.errors import ProviderRejected
from orders_service.domain.fraud import FraudAction
from orders_service.domain.saga import Reason, Step, StepStatus
from orders_service.repository import OrderRow
from orders_service.service.saga.steps.base import SagaAction, StepContext, StepOutcome

__all__ = ["CheckFraud", "ScreenFraud"]


class _FraudStep(SagaAction):
    stage: ClassVar[str]
    unavailable = Reason.FRAUD_CHECK_UNAVAILABLE
    # Redis or the database out of reach: wait it out, never let an order through unchecked.
    wait_out_unavailable = True

    def rejected(self, exc: ProviderRejected) -> Reason:
        return Reason.FRAUD_REFUSED

    def idle(self, ctx: StepContext) -> StepOutcome | None:
        if ctx.fraud.rules_for(self.stage):
            return None
        return StepOutcome(StepStatus.SKIPPED, {"note": "no fraud rule at this stage"})

    async def perform(self, order: OrderRow, ctx: StepContext) -> StepOutcome:
        result = await ctx.fraud.evaluate(order, stage=self.stage)
        if result is None:
            return StepOutcome(StepStatus.SKIPPED, {"note": "no fraud rule at this stage"})
        if result.decision.action == FraudAction.REFUSE:
            rules = ", ".join(result.decision.matched)
            raise ProviderRejected(
                "fraud",
                status=403,
                code="fraud_refused",
                detail=f"refused by rule {rules}",
                body=result.as_dict(),
            )
        if result.decision.action == FraudAction.HOLD:
            return StepOutcome(StepStatus.HELD, result.as_dict())
        return StepOutcome(StepStatus.SUCCEEDED, result.as_dict())


class ScreenFraud(_FraudStep):
    """Velocity, declines in a row, distinct tokens: before anything is reserved."""

    step = Step.SCREEN_FRAUD
    stage = "screen"


class CheckFraud(_FraudStep):
    """The amount rules, once inventory priced the order."""

    step = Step.CHECK_FRAUD
    stage = "amount"
