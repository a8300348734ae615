"""What the orders lifespan builds once and every request shares (typed; see
:mod:`storefront_kit.state`)."""

from collections.abc import Mapping

from orders_service.clients.breakers import AsyncCircuitBreaker
from orders_service.service.shards import OrdersShards
from orders_service.settings import OrdersSettings
from storefront_kit.breaker import Breaker
from storefront_kit.events import StreamConsumer
from storefront_kit.state import DatabaseState

__all__ = ["OrdersState"]


class OrdersState(DatabaseState):
    """Orders' clients: its databases, Redis, the saga runners and the loops around them.

    ``engine`` and ``sessionmaker`` are the first shard's (the only one unless orders
    are split); what belongs to a user goes through ``shards``.
    """

    settings: OrdersSettings
    #: Opened by the Redis watch the moment Redis stops answering: checkouts stop waiting
    #: for sagas that cannot progress, readiness says so, and the kit's token revocation
    #: check skips Redis while it is open.
    redis_breaker: Breaker
    #: The provider breakers (``payments``, ``shipping``), their state shared in Redis.
    breakers: Mapping[str, AsyncCircuitBreaker]
    #: Every orders database with its saga runner and outbox relay, and the router.
    shards: OrdersShards
    #: ``user.erased`` from auth (orders_service.workers.erasure).
    erasure_consumer: StreamConsumer
