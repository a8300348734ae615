"""What the orders lifespan builds once and every request shares (typed; see
:mod:`storefront_kit.state`)."""

from collections.abc import Mapping
from dataclasses import dataclass

from orders_service.clients.breakers import AsyncCircuitBreaker
from orders_service.service.saga.runner import SagaRunner
from orders_service.settings import OrdersSettings
from storefront_kit.breaker import Breaker
from storefront_kit.events import OutboxRelay, StreamConsumer
from storefront_kit.state import DatabaseState

__all__ = ["OrdersState"]


@dataclass(frozen=True, kw_only=True, eq=False)
class OrdersState(DatabaseState):
    """Orders' clients: the database, Redis, the saga runner and the loops around it."""

    settings: OrdersSettings
    #: Opened by the Redis watch the moment Redis stops answering: checkouts stop waiting
    #: for sagas that cannot progress, readiness says so, and the kit's token revocation
    #: check skips Redis while it is open.
    redis_breaker: Breaker
    #: The provider breakers (``payments``, ``shipping``), their state shared in Redis.
    breakers: Mapping[str, AsyncCircuitBreaker]
    saga_runner: SagaRunner
    outbox_relay: OutboxRelay
    #: ``user.erased`` from auth (orders_service.workers.erasure).
    erasure_consumer: StreamConsumer
