"""The step registry covers the state machine: every step has one handler of its kind."""

from orders_service.domain.saga import ACTIONS, COMPENSATIONS, Step
from orders_service.models import CustomerOrder
from orders_service.service.saga.steps import STEPS, SagaAction
from storefront_kit.ids import new_id


def test_every_step_of_the_state_machine_has_its_handler() -> None:
    assert set(STEPS) == set(Step)
    assert all(STEPS[step].step == step for step in Step)


def test_actions_say_why_they_fail_and_compensations_need_not() -> None:
    assert all(isinstance(STEPS[step], SagaAction) for step in ACTIONS)
    assert not any(isinstance(STEPS[step], SagaAction) for step in COMPENSATIONS)


def test_idempotency_keys_are_stable_per_order_step_and_target() -> None:
    order = CustomerOrder(id=new_id())
    refund = STEPS[Step.REFUND_PAYMENT]
    # The key a provider already saw must come out the same after a crash or a restart.
    assert refund.idempotency_key(order, "pay_1") == f"{order.id}:refund_payment:pay_1"
    assert STEPS[Step.CAPTURE_PAYMENT].idempotency_key(order) == f"{order.id}:capture_payment"
