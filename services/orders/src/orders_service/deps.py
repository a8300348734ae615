"""Annotated dependency aliases: what an endpoint may ask for."""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from orders_service.errors import CardNumberRefused
from orders_service.service.saga.runner import SagaRunner
from orders_service.settings import OrdersSettings
from orders_service.state import OrdersState
from storefront_kit.audit import AdminAudit
from storefront_kit.breaker import Breaker
from storefront_kit.cards import contains_card_number
from storefront_kit.db import request_session
from storefront_kit.security import AdminUser, CurrentUser, StaffUser
from storefront_kit.state import state_dependency, state_part

__all__ = [
    "AdminAudit",
    "AdminUser",
    "CurrentUser",
    "RedisBreakerDep",
    "RedisDep",
    "RunnerDep",
    "SessionDep",
    "SettingsDep",
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
SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]
RunnerDep = Annotated[SagaRunner, Depends(state_part(OrdersState, lambda s: s.saga_runner))]
#: The breaker of orders' Redis, opened by its watch the moment Redis stops answering.
RedisBreakerDep = Annotated[Breaker, Depends(state_part(OrdersState, lambda s: s.redis_breaker))]


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
