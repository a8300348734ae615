"""``authorize_payment`` and ``capture_payment``: money is reserved, then taken; both
are undone by ``refund_payment``, which lets the provider's own record decide."""

from typing import Any

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

__all__ = ["AuthorizePayment", "CapturePayment", "RefundPayment"]


class _PaymentAction(SagaAction):
    unavailable = Reason.PAYMENT_UNAVAILABLE
    circuit_open = Reason.PAYMENT_CIRCUIT_OPEN

    def rejected(self, exc: ProviderRejected) -> Reason:
        return Reason.PAYMENT_DECLINED if exc.status == 402 else Reason.PAYMENT_REJECTED


class AuthorizePayment(_PaymentAction):
    """Reserve the total on the customer's card (nothing to do for a free order)."""

    step = Step.AUTHORIZE_PAYMENT

    async def perform(self, order: OrderRow, ctx: StepContext) -> StepOutcome:
        if not order.total or not order.currency:
            return StepOutcome(StepStatus.SKIPPED, {"note": "nothing to pay"})
        payment = await ctx.payments.authorize(
            order_id=str(order.id),
            amount=order.total,
            currency=order.currency,
            payment_method=order.payment_method,
            key=self.idempotency_key(order),
        )
        return StepOutcome(
            StepStatus.SUCCEEDED, {"payment_id": payment.id, "status": payment.status}
        )

    def apply(self, session: AsyncSession, order: OrderRow, outcome: StepOutcome) -> list[Alert]:
        if outcome.status == StepStatus.SUCCEEDED:
            order.payment_id = str(outcome.result["payment_id"])
        return []


class CapturePayment(_PaymentAction):
    """Take the authorized money."""

    step = Step.CAPTURE_PAYMENT

    async def perform(self, order: OrderRow, ctx: StepContext) -> StepOutcome:
        if order.payment_id is None:
            return StepOutcome(StepStatus.SKIPPED, {"note": "nothing to pay"})
        payment = await ctx.payments.capture(
            payment_id=order.payment_id, key=self.idempotency_key(order)
        )
        return StepOutcome(
            StepStatus.SUCCEEDED,
            {"payment_id": payment.id, "status": payment.status, "amount": payment.captured_amount},
        )

    def apply(self, session: AsyncSession, order: OrderRow, outcome: StepOutcome) -> list[Alert]:
        if outcome.status == StepStatus.SUCCEEDED:
            data = {
                **receipt(order),
                "payment_id": order.payment_id,
                "amount": outcome.result["amount"],
            }
            stage_event(session, order, "payment.captured", data)
        return []


class RefundPayment(SagaStep):
    """Refund what was captured, void what was only authorized (the provider's record
    decides, so an authorization whose outcome was unknown is found too)."""

    step = Step.REFUND_PAYMENT

    async def perform(self, order: OrderRow, ctx: StepContext) -> StepOutcome:
        payments = await ctx.payments.payments_for_order(order_id=str(order.id))
        if not payments:
            return StepOutcome(StepStatus.SKIPPED, {"note": "no payment"})
        refunded: list[dict[str, Any]] = []
        voided: list[str] = []
        for payment in payments:
            if payment.status in ("captured", "partially_refunded"):
                payment = await ctx.payments.refund(
                    payment_id=payment.id,
                    key=self.idempotency_key(order, payment.id),
                    reason=order.reason,
                )
            elif payment.status == "authorized":
                payment = await ctx.payments.void(
                    payment_id=payment.id,
                    key=self.idempotency_key(order, f"void:{payment.id}"),
                )
                voided.append(payment.id)
            if payment.refunded_amount > 0:
                refunded.append(
                    {
                        "payment_id": payment.id,
                        "amount": payment.refunded_amount,
                        "currency": payment.currency,
                    }
                )
        return StepOutcome(StepStatus.SUCCEEDED, {"refunded": refunded, "voided": voided})

    def apply(self, session: AsyncSession, order: OrderRow, outcome: StepOutcome) -> list[Alert]:
        for refund in outcome.result.get("refunded", []):
            stage_event(session, order, "payment.refunded", {**refund, "reason": order.reason})
        return []
