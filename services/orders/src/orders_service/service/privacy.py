"""A user's orders: exported for auth, pseudonymised when the user is erased.

Erasure arrives as ``user.erased`` on ``users.events`` (auth's outbox), read by the
``orders-erasure`` consumer group (:mod:`orders_service.workers.erasure`): at least
once, so :func:`erase_user` is idempotent. In one transaction it locks the user's
orders, drops the user's fraud velocity counters in Redis (the keys name the user, the
client address or the phone's pseudonym; only this user's checkouts leave a shared
window), then replaces ``user_id`` by a fresh random pseudonym (kept nowhere else: no
way back) and clears the shipping and client addresses and the phone's pseudonym, in
orders, saga steps and the outbox. Lines, totals, statuses, payments and shipments stay, as
bookkeeping requires. Run again, it finds no order of that user and changes nothing; a
crash before the commit leaves the entry unacknowledged, and the group delivers it
again when the service is back.
"""

import uuid
from collections.abc import Sequence
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orders_service import repository
from orders_service.domain.fraud import FraudRule, RuleKind
from orders_service.models import CustomerOrder
from orders_service.schemas import ExportedOrder, ExportedOrders, ExportedStep

__all__ = ["erase_user", "export_orders"]


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


async def erase_user(
    user_id: str,
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    fraud_rules: tuple[FraudRule, ...],
    fraud_namespace: str,
) -> int:
    """Pseudonymise ``user_id``'s orders and drop their fraud counters (its own
    transaction); how many orders changed."""
    async with sessionmaker() as session, session.begin():
        orders = await repository.orders_of_user(session, user_id, for_update=True)
        # Before the commit: a failure here rolls back and the event comes again.
        await _drop_fraud_counters(redis, fraud_rules, fraud_namespace, user_id, orders)
        return await repository.pseudonymise_user(session, user_id, pseudonym=str(uuid.uuid4()))


async def _drop_fraud_counters(
    redis: Redis,
    rules: tuple[FraudRule, ...],
    namespace: str,
    user_id: str,
    orders: Sequence[CustomerOrder],
) -> None:
    keys: list[str] = []
    members: dict[str, list[str]] = {}
    for rule in rules:
        if rule.kind == RuleKind.VELOCITY_USER:
            keys.append(f"{namespace}:{rule.name}:u:{user_id}")
        elif rule.kind == RuleKind.VELOCITY_CLIENT:
            for order in orders:
                if order.client_address:
                    key = f"{namespace}:{rule.name}:c:{order.client_address}"
                    members.setdefault(key, []).append(str(order.id))
        elif rule.kind == RuleKind.VELOCITY_PHONE:
            # Only this user's checkouts leave the phone's window; other accounts of the
            # same phone keep theirs.
            for order in orders:
                if order.phone_ref:
                    key = f"{namespace}:{rule.name}:p:{order.phone_ref}"
                    members.setdefault(key, []).append(str(order.id))
    if not keys and not members:
        return
    async with redis.pipeline(transaction=False) as pipe:
        if keys:
            pipe.delete(*keys)
        for key, ids in members.items():
            pipe.zrem(key, *ids)
        await pipe.execute()
