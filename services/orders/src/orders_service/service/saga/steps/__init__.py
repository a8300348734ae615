"""The saga's steps: one handler per :class:`~orders_service.domain.saga.Step`.

``STEPS`` is the registry the orchestrator runs from. Adding a step is a module here
with its handler (see ``base.py``), one line below, and the step's name and place in
the state machine (``domain/saga.py``); docs/orders.md walks through an example.
"""

from collections.abc import Mapping

from orders_service.domain.saga import ACTIONS, Step
from orders_service.service.saga.steps.base import (
    Alert,
    SagaAction,
    SagaStep,
    StepContext,
    StepOutcome,
)
from orders_service.service.saga.steps.commit_inventory import CommitInventory
from orders_service.service.saga.steps.fraud import CheckFraud, ScreenFraud
from orders_service.service.saga.steps.payment import (
    AuthorizePayment,
    CapturePayment,
    RefundPayment,
)
from orders_service.service.saga.steps.reserve_inventory import ReleaseInventory, ReserveInventory
from orders_service.service.saga.steps.shipment import CancelShipment, CreateShipment

__all__ = [
    "STEPS",
    "Alert",
    "SagaAction",
    "SagaStep",
    "StepContext",
    "StepOutcome",
    "action",
]


def _registry(*handlers: SagaStep) -> Mapping[Step, SagaStep]:
    steps = {handler.step: handler for handler in handlers}
    # Checked at import: a step the state machine names but nobody handles would
    # otherwise surface only when a saga reaches it.
    missing = set(Step) - steps.keys()
    wrong = [s for s in ACTIONS if s in steps and not isinstance(steps[s], SagaAction)]
    if missing or wrong or len(steps) != len(handlers):
        raise RuntimeError(f"saga steps: missing {missing}, not actions {wrong}, or duplicates")
    return steps


STEPS: Mapping[Step, SagaStep] = _registry(
    ScreenFraud(),
    ReserveInventory(),
    CheckFraud(),
    AuthorizePayment(),
    CapturePayment(),
    CreateShipment(),
    CommitInventory(),
    CancelShipment(),
    RefundPayment(),
    ReleaseInventory(),
)


def action(step: Step) -> SagaAction:
    """The handler of the forward step ``step``."""
    handler = STEPS[step]
    if not isinstance(handler, SagaAction):
        raise TypeError(f"not an action: {step}")
    return handler
