"""Settings defaults that must agree with each other."""

from orders_service.settings import OrdersSettings


def test_default_saga_concurrency_leaves_pool_connections_for_requests() -> None:
    # A running saga holds a pooled connection in each step transaction: more sagas than
    # connections queue on the pool and time out there (503s, half-done sagas).
    settings = OrdersSettings(_env_file=None)
    assert settings.max_concurrent_sagas < settings.db_pool_size + settings.db_max_overflow
