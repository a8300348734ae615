"""Failed steps are classified: no effect or unknown outcome, and a stable reason."""

import pytest

from orders_service.clients.errors import (
    ProviderCircuitOpen,
    ProviderRejected,
    ProviderUnavailable,
)
from orders_service.clients.shipment import ShipmentRequestError
from orders_service.domain.saga import Reason, Step, StepStatus
from orders_service.service.saga.failures import classify


def rejected(status: int, code: str) -> ProviderRejected:
    return ProviderRejected("p", status=status, code=code, detail="no", body={})


@pytest.mark.parametrize(
    ("step", "exc", "status", "reason"),
    [
        (
            Step.RESERVE_INVENTORY,
            rejected(409, "insufficient_stock"),
            StepStatus.REJECTED,
            Reason.OUT_OF_STOCK,
        ),
        (
            Step.RESERVE_INVENTORY,
            rejected(422, "unknown_sku"),
            StepStatus.REJECTED,
            Reason.UNKNOWN_SKU,
        ),
        (
            Step.AUTHORIZE_PAYMENT,
            rejected(402, "payment_declined"),
            StepStatus.REJECTED,
            Reason.PAYMENT_DECLINED,
        ),
        (
            Step.CREATE_SHIPMENT,
            rejected(422, "shipment_rejected"),
            StepStatus.REJECTED,
            Reason.SHIPMENT_REJECTED,
        ),
        (
            Step.COMMIT_INVENTORY,
            rejected(409, "reservation_state"),
            StepStatus.REJECTED,
            Reason.RESERVATION_EXPIRED,
        ),
        (
            Step.AUTHORIZE_PAYMENT,
            ProviderUnavailable("p", "timeout", uncertain=True),
            StepStatus.FAILED,
            Reason.PAYMENT_UNAVAILABLE,
        ),
        (
            Step.AUTHORIZE_PAYMENT,
            ProviderUnavailable("p", "HTTP 503", uncertain=False),
            StepStatus.REJECTED,
            Reason.PAYMENT_UNAVAILABLE,
        ),
        (
            Step.CAPTURE_PAYMENT,
            ProviderCircuitOpen("p", uncertain=False),
            StepStatus.REJECTED,
            Reason.PAYMENT_CIRCUIT_OPEN,
        ),
        (
            Step.CREATE_SHIPMENT,
            ProviderCircuitOpen("p", uncertain=True),
            StepStatus.FAILED,
            Reason.SHIPPING_CIRCUIT_OPEN,
        ),
        (
            Step.CREATE_SHIPMENT,
            ShipmentRequestError("missing"),
            StepStatus.REJECTED,
            Reason.INVALID_SHIPMENT,
        ),
        (Step.RESERVE_INVENTORY, RuntimeError("bug"), StepStatus.FAILED, Reason.INTERNAL_ERROR),
    ],
)
def test_failures_are_classified(
    step: Step, exc: Exception, status: StepStatus, reason: Reason
) -> None:
    failure = classify(step, exc)
    assert (failure.step_status, failure.reason) == (status, reason)
    assert failure.retry_later is False


def test_an_unreachable_inventory_at_commit_is_waited_out_not_compensated() -> None:
    failure = classify(
        Step.COMMIT_INVENTORY, ProviderUnavailable("inventory", "timeout", uncertain=True)
    )
    assert failure.retry_later is True
    assert failure.reason == Reason.INVENTORY_UNAVAILABLE
