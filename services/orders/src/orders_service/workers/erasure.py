"""The ``users.events`` handler of orders: an erased user's orders pseudonymised.

Read by the ``orders-erasure`` consumer group (built by the lifespan): one replica
handles each ``user.erased``, at least once; the use case
(:func:`orders_service.service.privacy.erase_user`) is idempotent.
"""

from redis.asyncio import Redis

from orders_service.domain.fraud import FraudRule
from orders_service.events import USER_ERASED, USERS_STREAM
from orders_service.service.privacy import erase_user
from orders_service.service.shards import OrdersShards
from storefront_kit.events import EventEnvelope, PoisonMessage
from storefront_kit.logging import get_logger

__all__ = ["ERASURE_GROUP", "USERS_STREAM", "UserErasure"]

logger = get_logger(__name__)

ERASURE_GROUP = "orders-erasure"


class UserErasure:
    """The ``users.events`` handler: pseudonymise an erased user's orders, once in effect."""

    def __init__(
        self,
        *,
        shards: OrdersShards,
        redis: Redis,
        fraud_rules: tuple[FraudRule, ...],
        fraud_namespace: str,
    ) -> None:
        self._shards = shards
        self._redis = redis
        self._rules = fraud_rules
        self._namespace = fraud_namespace

    async def __call__(self, event: EventEnvelope) -> None:
        if event.type != USER_ERASED:
            return
        user_id = event.data.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            raise PoisonMessage("user.erased without a user_id")
        changed = await erase_user(
            user_id,
            sessionmaker=self._shards.for_user(user_id).sessionmaker,
            redis=self._redis,
            fraud_rules=self._rules,
            fraud_namespace=self._namespace,
        )
        # Never the user id: log lines after an erasure name no erased user.
        logger.info("user_orders_pseudonymised", orders=changed, event_id=str(event.id))
