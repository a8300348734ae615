"""A user's orders: exported for auth, pseudonymised when the user is erased.

Erasure arrives as ``user.erased`` on ``users.events`` (auth's outbox), read by the
``orders-erasure`` consumer group: at least once, so the handler is idempotent. In one
transaction it locks the user's orders, drops the user's fraud velocity counters in
Redis (the keys name the user, the client address or the phone's pseudonym; only this
user's checkouts leave a shared window), then replaces ``user_id`` by a fresh random
pseudonym (kept nowhere else: no way back) and clears the shipping and client addresses
and the phone's pseudonym, in orders, saga steps and the outbox. Lines, totals, statuses,
payments and shipments stay, as bookkeeping requires. Delivered again, it finds no
order of that user and changes nothing; a crash before the commit leaves the entry
unacknowledged, and the group delivers it again when the service is back.
"""

import uuid
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orders_service import repository
from orders_service.domain.fraud import FraudRule, RuleKind
from orders_service.schemas import ExportedOrder, ExportedOrders, ExportedStep
from storefront_kit.events import EventEnvelope, PoisonMessage
from storefront_kit.logging import get_logger

__all__ = ["ERASURE_GROUP", "USERS_STREAM", "UserErasure", "export_orders"]

logger = get_logger(__name__)

USERS_STREAM = "users.events"
ERASURE_GROUP = "orders-erasure"
USER_ERASED = "user.erased"


async def export_orders(session: AsyncSession, user_id: UUID) -> ExportedOrders:
    """Every order of the user with its saga steps (payment, shipment, stock)."""
    orders = await repository.orders_of_user(session, str(user_id))
    steps = await repository.steps_of_orders(session, [o.id for o in orders])
    by_order: dict[UUID, list[ExportedStep]] = {}
    for step in steps:
        by_order.setdefault(step.order_id, []).append(ExportedStep.model_validate(step))
    return ExportedOrders(
        orders=[
            ExportedOrder.model_validate(
                {
                    **{k: getattr(o, k) for k in ExportedOrder.model_fields if k != "steps"},
                    "steps": by_order.get(o.id, []),
                }
            )
            for o in orders
        ]
    )


class UserErasure:
    """The ``users.events`` handler: pseudonymise an erased user's orders, once in effect."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        fraud_rules: tuple[FraudRule, ...],
        fraud_namespace: str,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._redis = redis
        self._rules = fraud_rules
        self._namespace = fraud_namespace

    async def __call__(self, event: EventEnvelope) -> None:
        if event.type != USER_ERASED:
            return
        user_id = event.data.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            raise PoisonMessage("user.erased without a user_id")
        async with self._sessionmaker() as session, session.begin():
            orders = await repository.orders_of_user(session, user_id, for_update=True)
            # Before the commit: a failure here rolls back and the event comes again.
            await self._drop_fraud_counters(user_id, orders)
            changed = await repository.pseudonymise_user(
                session, user_id, pseudonym=str(uuid.uuid4())
            )
        # Never the user id: log lines after an erasure name no erased user.
        logger.info("user_orders_pseudonymised", orders=changed, event_id=str(event.id))

    async def _drop_fraud_counters(self, user_id: str, orders: Any) -> None:
        keys: list[str] = []
        members: dict[str, list[str]] = {}
        for rule in self._rules:
            if rule.kind == RuleKind.VELOCITY_USER:
                keys.append(f"{self._namespace}:{rule.name}:u:{user_id}")
            elif rule.kind == RuleKind.VELOCITY_CLIENT:
                for order in orders:
                    if order.client_address:
                        key = f"{self._namespace}:{rule.name}:c:{order.client_address}"
                        members.setdefault(key, []).append(str(order.id))
            elif rule.kind == RuleKind.VELOCITY_PHONE:
                # Only this user's checkouts leave the phone's window; other accounts of
                # the same phone keep theirs.
                for order in orders:
                    if order.phone_ref:
                        key = f"{self._namespace}:{rule.name}:p:{order.phone_ref}"
                        members.setdefault(key, []).append(str(order.id))
        if not keys and not members:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            if keys:
                pipe.delete(*keys)
            for key, ids in members.items():
                pipe.zrem(key, *ids)
            await pipe.execute()
