"""Annotated dependency aliases: what an endpoint may ask for."""

from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from orders_service.errors import CardNumberRefused, OrderNotFound
from orders_service.service.shards import OrdersShard, OrdersShards
from orders_service.settings import OrdersSettings
from orders_service.state import OrdersState
from storefront_kit.audit import AdminAudit
from storefront_kit.breaker import Breaker
from storefront_kit.cards import contains_card_number
from storefront_kit.db import unit_of_work
from storefront_kit.paging import Paging, paging_dependency, settings_page_limits
from storefront_kit.security import AdminUser, CurrentUser, StaffUser
from storefront_kit.state import state_dependency, state_part

__all__ = [
    "AdminAudit",
    "AdminUser",
    "CurrentUser",
    "CustomerSessionDep",
    "CustomerShardDep",
    "OrderPaging",
    "OrderSessionDep",
    "OrderShardDep",
    "RedisBreakerDep",
    "RedisDep",
    "SettingsDep",
    "ShardsDep",
    "StaffUser",
    "StateDep",
    "refuse_card_numbers",
]

#: Everything the orders lifespan built, typed (storefront_kit.state).
StateDep = Annotated[OrdersState, Depends(state_dependency(OrdersState))]


# Read straight from the state (``state_part``), not through StateDep: one dependency
# fewer to resolve on every checkout.
SettingsDep = Annotated[OrdersSettings, Depends(state_part(OrdersState, lambda s: s.settings))]
RedisDep = Annotated[Redis, Depends(state_part(OrdersState, lambda s: s.redis))]
#: The breaker of orders' Redis, opened by its watch the moment Redis stops answering.
RedisBreakerDep = Annotated[Breaker, Depends(state_part(OrdersState, lambda s: s.redis_breaker))]
#: Every orders database (one unless split) and the router (orders_service.service.shards).
ShardsDep = Annotated[OrdersShards, Depends(state_part(OrdersState, lambda s: s.shards))]
#: ``?page=&size=`` of the order lists (``ORDERS_PAGE_SIZE_DEFAULT``/``_MAX``).
OrderPaging = Annotated[
    Paging,
    Depends(paging_dependency(settings_page_limits(OrdersState), name="size", numbered=True)),
]


# The request owns the transaction, on the database the request is about: the caller's
# own (a customer's routes), or the one holding the order in the path (staff routes).
# Committed when the endpoint returns (scope="function": before the response is sent),
# rolled back on error, as storefront_kit.db.request_session does for one database.
async def _customer_shard(user: CurrentUser, shards: ShardsDep) -> OrdersShard:
    return shards.for_user(user.subject)


#: The caller's shard: where their orders are written and read, and their sagas run.
CustomerShardDep = Annotated[OrdersShard, Depends(_customer_shard)]


async def _customer_session(shard: CustomerShardDep) -> AsyncIterator[AsyncSession]:
    async with unit_of_work(shard.sessionmaker) as session:
        yield session


#: The request's transaction on the caller's shard.
CustomerSessionDep = Annotated[AsyncSession, Depends(_customer_session, scope="function")]


async def _order_shard(order_id: UUID, shards: ShardsDep) -> OrdersShard:
    shard = await shards.holding(order_id)
    if shard is None:
        raise OrderNotFound(f"No order {order_id}.")
    return shard


#: The shard holding the path's ``order_id`` (404 ``order_not_found`` when none does).
OrderShardDep = Annotated[OrdersShard, Depends(_order_shard)]


async def _order_session(shard: OrderShardDep) -> AsyncIterator[AsyncSession]:
    async with unit_of_work(shard.sessionmaker) as session:
        yield session


#: The request's transaction on the shard holding the path's order.
OrderSessionDep = Annotated[AsyncSession, Depends(_order_session, scope="function")]


async def refuse_card_numbers(request: Request) -> None:
    """Refuse (422 ``card_number_refused``) a JSON body with a card number in any string.

    Runs before the body is validated, so the number reaches neither the model, the
    database nor a validation error. FastAPI has already parsed the body; Starlette
    caches it, so this reads no bytes twice.
    """
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            return  # malformed JSON: FastAPI answers its own 422
        if contains_card_number(body):
            raise CardNumberRefused(
                "The request holds what looks like a payment card number. Card numbers "
                "are never accepted: pay with the token from the payment provider."
            )
