"""How a failed saga step is classified: rejected or unknown outcome, and why.

What each kind of failure means for the order (its ``reason``) is the step's own
knowledge (:class:`~orders_service.service.saga.steps.SagaAction`); whether the call may have
had an effect depends only on the error.
"""

from dataclasses import dataclass

from orders_service.clients.errors import (
    ProviderCircuitOpen,
    ProviderRejected,
    ProviderUnavailable,
)
from orders_service.clients.shipment import ShipmentRequestError
from orders_service.domain.saga import Reason, Step, StepStatus
from orders_service.service.saga.steps import action

__all__ = ["Failure", "classify"]


@dataclass(frozen=True)
class Failure:
    """What to record for a failed action and what to do next."""

    step_status: StepStatus  # REJECTED: no effect; FAILED: the outcome is unknown
    reason: Reason
    detail: str
    #: Try the same step again later instead of compensating.
    retry_later: bool = False


def classify(step: Step, exc: BaseException) -> Failure:
    """The :class:`Failure` for action ``step`` having raised ``exc``."""
    handler = action(step)
    if isinstance(exc, ProviderRejected):
        return Failure(StepStatus.REJECTED, handler.rejected(exc), exc.message)
    if isinstance(exc, ProviderCircuitOpen):
        status = StepStatus.FAILED if exc.uncertain else StepStatus.REJECTED
        return Failure(status, handler.circuit_open or handler.unavailable, exc.message)
    if isinstance(exc, ProviderUnavailable):
        return Failure(
            StepStatus.FAILED if exc.uncertain else StepStatus.REJECTED,
            handler.unavailable,
            exc.message,
            retry_later=handler.wait_out_unavailable,
        )
    if isinstance(exc, ShipmentRequestError):  # built and refused before anything was sent
        return Failure(StepStatus.REJECTED, Reason.INVALID_SHIPMENT, str(exc))
    return Failure(StepStatus.FAILED, Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
