"""How a failed saga step is classified: rejected or unknown outcome, and why."""

from dataclasses import dataclass

from orders_service.domain.saga import Reason, Step, StepStatus
from orders_service.providers.errors import (
    ProviderCircuitOpen,
    ProviderRejected,
    ProviderUnavailable,
)
from orders_service.providers.shipment import ShipmentRequestError

__all__ = ["Failure", "classify"]


@dataclass(frozen=True)
class Failure:
    """What to record for a failed action and what to do next."""

    step_status: StepStatus  # REJECTED: no effect; FAILED: the outcome is unknown
    reason: Reason
    detail: str
    #: Try the same step again later instead of compensating.
    retry_later: bool = False


_INVENTORY_CODES = {
    "insufficient_stock": Reason.OUT_OF_STOCK,
    "unknown_sku": Reason.UNKNOWN_SKU,
    "product_unavailable": Reason.PRODUCT_UNAVAILABLE,
    "mixed_currency": Reason.MIXED_CURRENCY,
}
_PAYMENT_STEPS = (Step.AUTHORIZE_PAYMENT, Step.CAPTURE_PAYMENT)


def _rejected(step: Step, exc: ProviderRejected) -> Reason:
    if step == Step.RESERVE_INVENTORY:
        return _INVENTORY_CODES.get(exc.code, Reason.RESERVATION_REJECTED)
    if step == Step.COMMIT_INVENTORY:
        return Reason.RESERVATION_EXPIRED
    if step in _PAYMENT_STEPS:
        return Reason.PAYMENT_DECLINED if exc.status == 402 else Reason.PAYMENT_REJECTED
    return Reason.SHIPMENT_REJECTED


def _unavailable(step: Step) -> Reason:
    if step in _PAYMENT_STEPS:
        return Reason.PAYMENT_UNAVAILABLE
    if step == Step.CREATE_SHIPMENT:
        return Reason.SHIPPING_UNAVAILABLE
    return Reason.INVENTORY_UNAVAILABLE


def classify(step: Step, exc: BaseException) -> Failure:
    """The :class:`Failure` for action ``step`` having raised ``exc``."""
    if isinstance(exc, ProviderRejected):
        return Failure(StepStatus.REJECTED, _rejected(step, exc), exc.message)
    if isinstance(exc, ProviderCircuitOpen):
        reason = (
            Reason.PAYMENT_CIRCUIT_OPEN if step in _PAYMENT_STEPS else Reason.SHIPPING_CIRCUIT_OPEN
        )
        status = StepStatus.FAILED if exc.uncertain else StepStatus.REJECTED
        return Failure(status, reason, exc.message)
    if isinstance(exc, ProviderUnavailable):
        # Payment is taken and the parcel booked: an inventory hiccup at the very last
        # step is waited out (the reservation lasts minutes), not compensated.
        return Failure(
            StepStatus.FAILED if exc.uncertain else StepStatus.REJECTED,
            _unavailable(step),
            exc.message,
            retry_later=step == Step.COMMIT_INVENTORY,
        )
    if isinstance(exc, ShipmentRequestError):
        return Failure(StepStatus.REJECTED, Reason.INVALID_SHIPMENT, str(exc))
    return Failure(StepStatus.FAILED, Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
