"""Settings defaults that must agree with each other."""

import pytest
from pydantic import ValidationError

from orders_service.settings import OrdersSettings, fraud_rules


def test_default_saga_concurrency_leaves_pool_connections_for_requests() -> None:
    # A running saga holds a pooled connection in each step transaction: more sagas than
    # connections queue on the pool and time out there (503s, half-done sagas).
    settings = OrdersSettings(_env_file=None)
    assert settings.max_concurrent_sagas < settings.db_pool_size + settings.db_max_overflow


def test_a_broken_fraud_rule_set_stops_the_service_at_start() -> None:
    with pytest.raises(ValidationError, match="needs a limit"):
        OrdersSettings(
            _env_file=None,
            fraud_rules='[{"name": "v", "kind": "velocity_user", "action": "hold", "window_s": 9}]',
        )
    assert fraud_rules(OrdersSettings(_env_file=None)) == ()
