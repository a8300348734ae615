"""The checkout saga as a pure state machine (docs/design.md §6).

Forward path, one persisted step at a time::

    PENDING --screen_fraud--> PENDING --reserve_inventory--> RESERVED
            --check_fraud--> RESERVED --authorize_payment--> RESERVED
            --capture_payment--> PAID --create_shipment--> SHIPMENT_CREATED
            --commit_inventory--> CONFIRMED

A failure (or a cancellation) turns the order COMPENSATING: the compensations of every
action that may have had an effect run in reverse (cancel the shipment, refund or void
the payment, release the stock), then the order ends FAILED or CANCELLED with a
machine-readable reason. Staff then move a CONFIRMED order through PROCESSING, SHIPPED
and DELIVERED.

``SHIPMENT_CREATED`` is the saga's "a parcel is booked" state; ``SHIPPED`` is the later,
physical hand-over an admin records. Keeping the names apart keeps "cancellable before
SHIPPED" unambiguous.

The two fraud steps evaluate the configured rules (:mod:`orders_service.domain.fraud`):
``screen_fraud`` before anything is reserved, ``check_fraud`` once inventory priced the
order. A rule that holds the order parks it ON_HOLD (the step ``held``) until staff
approve it (the step succeeds and the saga goes on) or reject it (compensation, FAILED
``fraud_rejected``).
"""

from collections.abc import Mapping
from enum import StrEnum

__all__ = [
    "ACTIONS",
    "ADMIN_TRANSITIONS",
    "COMPENSATIONS",
    "IN_FLIGHT",
    "PLAN",
    "SAGA_SETTLED",
    "TERMINAL",
    "CancelPlan",
    "InvalidTransition",
    "OrderStatus",
    "Reason",
    "Step",
    "StepKind",
    "StepStatus",
    "cancel_plan",
    "check_admin_transition",
    "compensation_of",
    "compensations_needed",
    "kind_of",
    "next_action",
    "status_after",
]


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    ON_HOLD = "ON_HOLD"  # a fraud rule asks for a review by staff
    RESERVED = "RESERVED"
    PAID = "PAID"
    SHIPMENT_CREATED = "SHIPMENT_CREATED"
    CONFIRMED = "CONFIRMED"
    PROCESSING = "PROCESSING"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    COMPENSATING = "COMPENSATING"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class Step(StrEnum):
    SCREEN_FRAUD = "screen_fraud"
    RESERVE_INVENTORY = "reserve_inventory"
    CHECK_FRAUD = "check_fraud"
    AUTHORIZE_PAYMENT = "authorize_payment"
    CAPTURE_PAYMENT = "capture_payment"
    CREATE_SHIPMENT = "create_shipment"
    COMMIT_INVENTORY = "commit_inventory"
    CANCEL_SHIPMENT = "cancel_shipment"
    REFUND_PAYMENT = "refund_payment"
    RELEASE_INVENTORY = "release_inventory"


class StepKind(StrEnum):
    ACTION = "action"
    COMPENSATION = "compensation"


class StepStatus(StrEnum):
    RUNNING = "running"  # started; its outcome is unknown until recorded
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # gave up, the outcome may be partial (timeouts, 5xx)
    REJECTED = "rejected"  # a definitive "no": the step had no effect
    SKIPPED = "skipped"  # nothing to do
    HELD = "held"  # waits for staff (a fraud review): the saga stops until they decide


class Reason(StrEnum):
    """Why an order ended FAILED or CANCELLED (the ``reason`` field, stable)."""

    OUT_OF_STOCK = "out_of_stock"
    UNKNOWN_SKU = "unknown_sku"
    PRODUCT_UNAVAILABLE = "product_unavailable"
    MIXED_CURRENCY = "mixed_currency"
    RESERVATION_REJECTED = "reservation_rejected"
    RESERVATION_EXPIRED = "reservation_expired"
    INVENTORY_UNAVAILABLE = "inventory_unavailable"
    PAYMENT_DECLINED = "payment_declined"
    PAYMENT_REJECTED = "payment_rejected"
    PAYMENT_UNAVAILABLE = "payment_unavailable"
    PAYMENT_CIRCUIT_OPEN = "payment_circuit_open"
    SHIPMENT_REJECTED = "shipment_rejected"
    SHIPPING_UNAVAILABLE = "shipping_unavailable"
    SHIPPING_CIRCUIT_OPEN = "shipping_circuit_open"
    INVALID_SHIPMENT = "invalid_shipment"
    CANCELLED_BY_CUSTOMER = "cancelled_by_customer"
    CANCELLED_BY_ADMIN = "cancelled_by_admin"
    FRAUD_REFUSED = "fraud_refused"
    FRAUD_REJECTED = "fraud_rejected"
    FRAUD_CHECK_UNAVAILABLE = "fraud_check_unavailable"
    INTERNAL_ERROR = "internal_error"


#: The forward path, in order: each action, the order's status once it succeeded, and the
#: compensation that undoes it (none for the final commit: nothing after it can fail).
#: One refund step undoes both payment actions (it refunds what was captured and voids
#: what was only authorized). A new step is one row here (and its handler in
#: ``saga/steps/``).
PLAN: tuple[tuple[Step, OrderStatus, Step | None], ...] = (
    (Step.SCREEN_FRAUD, OrderStatus.PENDING, None),
    (Step.RESERVE_INVENTORY, OrderStatus.RESERVED, Step.RELEASE_INVENTORY),
    (Step.CHECK_FRAUD, OrderStatus.RESERVED, None),
    (Step.AUTHORIZE_PAYMENT, OrderStatus.RESERVED, Step.REFUND_PAYMENT),
    (Step.CAPTURE_PAYMENT, OrderStatus.PAID, Step.REFUND_PAYMENT),
    (Step.CREATE_SHIPMENT, OrderStatus.SHIPMENT_CREATED, Step.CANCEL_SHIPMENT),
    (Step.COMMIT_INVENTORY, OrderStatus.CONFIRMED, None),
)
ACTIONS: tuple[Step, ...] = tuple(step for step, _, _ in PLAN)
# Reverse order of the actions they undo.
COMPENSATIONS: tuple[Step, ...] = tuple(
    dict.fromkeys(undo for _, _, undo in reversed(PLAN) if undo is not None)
)
_UNDO: dict[Step, Step] = {step: undo for step, _, undo in PLAN if undo is not None}
_STATUS_AFTER: dict[Step, OrderStatus] = {step: status for step, status, _ in PLAN}

#: A saga runs (or must be resumed) for these.
IN_FLIGHT = frozenset(
    {
        OrderStatus.PENDING,
        OrderStatus.RESERVED,
        OrderStatus.PAID,
        OrderStatus.SHIPMENT_CREATED,
        OrderStatus.COMPENSATING,
    }
)
#: The saga is over (successfully or not); only staff transitions may follow.
SAGA_SETTLED = frozenset(set(OrderStatus) - IN_FLIGHT)
#: Nothing ever changes any more.
TERMINAL = frozenset({OrderStatus.FAILED, OrderStatus.CANCELLED, OrderStatus.DELIVERED})

ADMIN_TRANSITIONS: dict[OrderStatus, OrderStatus] = {
    OrderStatus.CONFIRMED: OrderStatus.PROCESSING,
    OrderStatus.PROCESSING: OrderStatus.SHIPPED,
    OrderStatus.SHIPPED: OrderStatus.DELIVERED,
}


class InvalidTransition(Exception):
    """The requested status change is not allowed from the current status."""

    def __init__(self, current: OrderStatus, target: OrderStatus) -> None:
        super().__init__(f"cannot move an order from {current} to {target}")
        self.current = current
        self.target = target


def kind_of(step: Step) -> StepKind:
    """Whether ``step`` is a forward action or a compensation."""
    return StepKind.ACTION if step in ACTIONS else StepKind.COMPENSATION


def status_after(step: Step) -> OrderStatus:
    """The order status once the action ``step`` succeeded."""
    return _STATUS_AFTER[step]


def compensation_of(step: Step) -> Step | None:
    """The compensation that undoes the action ``step`` (none for the final commit)."""
    return _UNDO.get(step)


def next_action(steps: Mapping[Step, StepStatus]) -> Step | None:
    """The first action not yet done (or skipped); ``None`` when all are."""
    for step in ACTIONS:
        if steps.get(step) not in (StepStatus.SUCCEEDED, StepStatus.SKIPPED):
            return step
    return None


def compensations_needed(steps: Mapping[Step, StepStatus]) -> list[Step]:
    """Compensations still to run, in order: for every action that may have had an effect.

    An action that succeeded, is still marked running (a crash) or failed with an unknown
    outcome (a timeout: the provider may have done it) is undone; a rejected action had no
    effect. Compensations that already succeeded or were skipped are not run again.
    """
    needed: set[Step] = set()
    for action in ACTIONS:
        undo = compensation_of(action)
        if undo is None:
            continue
        if steps.get(action) in (StepStatus.SUCCEEDED, StepStatus.RUNNING, StepStatus.FAILED):
            needed.add(undo)
    done = (StepStatus.SUCCEEDED, StepStatus.SKIPPED)
    return [step for step in COMPENSATIONS if step in needed and steps.get(step) not in done]


def check_admin_transition(current: OrderStatus, target: OrderStatus) -> bool:
    """True when staff may move ``current`` to ``target``; False when it already is there.

    Raises :class:`InvalidTransition` otherwise.
    """
    if current == target and target in ADMIN_TRANSITIONS.values():
        return False
    if ADMIN_TRANSITIONS.get(current) != target:
        raise InvalidTransition(current, target)
    return True


class CancelPlan(StrEnum):
    """What cancelling an order in a given status means."""

    ALREADY = "already"  # it is CANCELLED: answer as it is
    INTERRUPT = "interrupt"  # the saga runs: ask it to stop and compensate
    COMPENSATE = "compensate"  # settled but not shipped: start compensating now
    IN_PROGRESS = "in_progress"  # compensation already under way
    FORBIDDEN = "forbidden"  # shipped, delivered or failed: too late


def cancel_plan(status: OrderStatus) -> CancelPlan:
    """How a cancel request is handled for an order in ``status``."""
    if status == OrderStatus.CANCELLED:
        return CancelPlan.ALREADY
    if status == OrderStatus.COMPENSATING:
        return CancelPlan.IN_PROGRESS
    if status in IN_FLIGHT:
        return CancelPlan.INTERRUPT
    if status in (OrderStatus.CONFIRMED, OrderStatus.PROCESSING, OrderStatus.ON_HOLD):
        return CancelPlan.COMPENSATE
    return CancelPlan.FORBIDDEN
