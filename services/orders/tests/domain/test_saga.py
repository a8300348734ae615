"""The saga state machine: forward order, what to compensate, staff transitions, cancels."""

import pytest

from orders_service.domain.saga import (
    ACTIONS,
    CancelPlan,
    InvalidTransition,
    OrderStatus,
    Step,
    StepKind,
    StepStatus,
    cancel_plan,
    check_admin_transition,
    compensations_needed,
    kind_of,
    next_action,
    status_after,
)

S = StepStatus


def test_actions_run_in_the_documented_order() -> None:
    done: dict[Step, StepStatus] = {}
    seen = []
    while (step := next_action(done)) is not None:
        seen.append(step)
        done[step] = S.SUCCEEDED
    assert seen == list(ACTIONS)
    assert [status_after(s) for s in seen] == [
        OrderStatus.PENDING,
        OrderStatus.RESERVED,
        OrderStatus.RESERVED,
        OrderStatus.RESERVED,
        OrderStatus.PAID,
        OrderStatus.SHIPMENT_CREATED,
        OrderStatus.CONFIRMED,
    ]


SCREENED = {Step.SCREEN_FRAUD: S.SKIPPED, Step.CHECK_FRAUD: S.SUCCEEDED}


def test_a_step_left_running_by_a_crash_is_run_again() -> None:
    done = {
        **SCREENED,
        Step.RESERVE_INVENTORY: S.SUCCEEDED,
        Step.AUTHORIZE_PAYMENT: S.RUNNING,
    }
    assert next_action(done) == Step.AUTHORIZE_PAYMENT


def test_a_held_fraud_step_is_not_done() -> None:
    assert next_action({Step.SCREEN_FRAUD: S.HELD}) == Step.SCREEN_FRAUD
    done = {Step.SCREEN_FRAUD: S.SUCCEEDED, Step.RESERVE_INVENTORY: S.SUCCEEDED}
    assert next_action({**done, Step.CHECK_FRAUD: S.HELD}) == Step.CHECK_FRAUD


def test_fraud_steps_have_nothing_to_compensate() -> None:
    assert compensations_needed({Step.SCREEN_FRAUD: S.HELD}) == []
    held_after_reserving = {
        Step.SCREEN_FRAUD: S.SUCCEEDED,
        Step.RESERVE_INVENTORY: S.SUCCEEDED,
        Step.CHECK_FRAUD: S.REJECTED,
    }
    assert compensations_needed(held_after_reserving) == [Step.RELEASE_INVENTORY]


def test_an_order_on_hold_is_cancelled_by_compensating() -> None:
    assert cancel_plan(OrderStatus.ON_HOLD) == CancelPlan.COMPENSATE


def test_skipped_payment_steps_count_as_done() -> None:
    done = {
        **SCREENED,
        Step.RESERVE_INVENTORY: S.SUCCEEDED,
        Step.AUTHORIZE_PAYMENT: S.SKIPPED,
        Step.CAPTURE_PAYMENT: S.SKIPPED,
    }
    assert next_action(done) == Step.CREATE_SHIPMENT


def test_kinds() -> None:
    assert kind_of(Step.CAPTURE_PAYMENT) == StepKind.ACTION
    assert kind_of(Step.REFUND_PAYMENT) == StepKind.COMPENSATION


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ({Step.RESERVE_INVENTORY: S.REJECTED}, []),
        (
            {Step.RESERVE_INVENTORY: S.SUCCEEDED, Step.AUTHORIZE_PAYMENT: S.REJECTED},
            [Step.RELEASE_INVENTORY],
        ),
        (
            # A timed-out authorization may have happened: look for it and void it.
            {Step.RESERVE_INVENTORY: S.SUCCEEDED, Step.AUTHORIZE_PAYMENT: S.FAILED},
            [Step.REFUND_PAYMENT, Step.RELEASE_INVENTORY],
        ),
        (
            {
                Step.RESERVE_INVENTORY: S.SUCCEEDED,
                Step.AUTHORIZE_PAYMENT: S.SUCCEEDED,
                Step.CAPTURE_PAYMENT: S.SUCCEEDED,
                Step.CREATE_SHIPMENT: S.REJECTED,
            },
            [Step.REFUND_PAYMENT, Step.RELEASE_INVENTORY],
        ),
        (
            {
                Step.RESERVE_INVENTORY: S.SUCCEEDED,
                Step.AUTHORIZE_PAYMENT: S.SUCCEEDED,
                Step.CAPTURE_PAYMENT: S.SUCCEEDED,
                Step.CREATE_SHIPMENT: S.RUNNING,
            },
            [Step.CANCEL_SHIPMENT, Step.REFUND_PAYMENT, Step.RELEASE_INVENTORY],
        ),
        (
            # Resumed after a crash mid-compensation: what is done is not repeated.
            {
                Step.RESERVE_INVENTORY: S.SUCCEEDED,
                Step.AUTHORIZE_PAYMENT: S.SUCCEEDED,
                Step.CAPTURE_PAYMENT: S.SUCCEEDED,
                Step.CREATE_SHIPMENT: S.REJECTED,
                Step.REFUND_PAYMENT: S.SUCCEEDED,
                Step.RELEASE_INVENTORY: S.FAILED,
            },
            [Step.RELEASE_INVENTORY],
        ),
    ],
)
def test_compensations_undo_what_may_have_happened_in_reverse(
    steps: dict[Step, StepStatus], expected: list[Step]
) -> None:
    assert compensations_needed(steps) == expected


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (OrderStatus.CONFIRMED, OrderStatus.PROCESSING),
        (OrderStatus.PROCESSING, OrderStatus.SHIPPED),
        (OrderStatus.SHIPPED, OrderStatus.DELIVERED),
    ],
)
def test_staff_move_orders_forward_one_step(current: OrderStatus, target: OrderStatus) -> None:
    assert check_admin_transition(current, target) is True
    assert check_admin_transition(target, target) is False  # a repeated request is a no-op


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (OrderStatus.CONFIRMED, OrderStatus.DELIVERED),
        (OrderStatus.PAID, OrderStatus.PROCESSING),
        (OrderStatus.FAILED, OrderStatus.PROCESSING),
        (OrderStatus.DELIVERED, OrderStatus.SHIPPED),
        (OrderStatus.CANCELLED, OrderStatus.SHIPPED),
    ],
)
def test_other_transitions_are_refused(current: OrderStatus, target: OrderStatus) -> None:
    with pytest.raises(InvalidTransition):
        check_admin_transition(current, target)


@pytest.mark.parametrize(
    ("status", "plan"),
    [
        (OrderStatus.PENDING, CancelPlan.INTERRUPT),
        (OrderStatus.SHIPMENT_CREATED, CancelPlan.INTERRUPT),
        (OrderStatus.CONFIRMED, CancelPlan.COMPENSATE),
        (OrderStatus.PROCESSING, CancelPlan.COMPENSATE),
        (OrderStatus.COMPENSATING, CancelPlan.IN_PROGRESS),
        (OrderStatus.CANCELLED, CancelPlan.ALREADY),
        (OrderStatus.SHIPPED, CancelPlan.FORBIDDEN),
        (OrderStatus.DELIVERED, CancelPlan.FORBIDDEN),
        (OrderStatus.FAILED, CancelPlan.FORBIDDEN),
    ],
)
def test_cancel_is_allowed_until_the_parcel_is_shipped(
    status: OrderStatus, plan: CancelPlan
) -> None:
    assert cancel_plan(status) == plan
