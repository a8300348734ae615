"""``/api/v1/orders``: checkout (the saga's entry point) and a customer's own orders."""

import time
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request, Response, status

from orders_service.api.common import ORDERS_PATH, StatusFilter, location
from orders_service.deps import (
    CurrentUser,
    CustomerSessionDep,
    CustomerShardDep,
    OrderPaging,
    RedisBreakerDep,
    SettingsDep,
    ShardsDep,
    refuse_card_numbers,
)
from orders_service.domain.saga import OrderStatus, Reason
from orders_service.errors import (
    CardNumberRefused,
    CheckoutRefused,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    OrderNotCancellable,
    OrderNotFound,
)
from orders_service.schemas import OrderCreate, OrderOut, OrderPage
from orders_service.service import orders
from storefront_kit.db import commit
from storefront_kit.forwarded import client_ip
from storefront_kit.problems import responses

__all__ = ["router"]

router = APIRouter(prefix=ORDERS_PATH, tags=["orders"], responses=responses(401))

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Required. A retry with the same key and body returns the same order.",
    ),
]
_IN_PROGRESS: dict[int | str, dict[str, Any]] = {
    202: {"model": OrderOut, "description": "Still running: poll the `Location`."},
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    # First of all dependencies: a card number is refused before anything else sees it.
    dependencies=[Depends(refuse_card_numbers)],
    responses={
        200: {"model": OrderOut, "description": "A replay of an earlier request (same key)."},
        **_IN_PROGRESS,
        **responses(
            CheckoutRefused, IdempotencyKeyMissing, IdempotencyKeyReused, CardNumberRefused
        ),
    },
)
async def create_order(
    body: OrderCreate,
    user: CurrentUser,
    session: CustomerSessionDep,
    shard: CustomerShardDep,
    settings: SettingsDep,
    redis_breaker: RedisBreakerDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> OrderOut:
    """Place an order and run the checkout saga: 201 with its outcome when it settles
    quickly, else 202 with a `Location` to poll. Prices come from inventory.

    Anything that looks like a card number, in any field, is refused (422
    `card_number_refused`) and neither stored nor repeated; pay with the provider's
    token. A fraud rule may refuse the checkout (403 `checkout_refused`, nothing charged)
    or hold the order for review (201 with status `ON_HOLD`)."""
    if not idempotency_key:
        raise IdempotencyKeyMissing("The Idempotency-Key header is required.")
    runner = shard.saga_runner
    # A new order's first saga steps are written by its insert, one statement committed
    # when it returns: the saga's first call follows with no transaction before it.
    first = runner.first_steps()
    leased_at = time.monotonic()  # the lease the insert takes runs from after this
    order, created = await orders.place_order(
        session,
        user_id=user.subject,
        idempotency_key=idempotency_key,
        body=body,
        lease_owner=runner.owner,
        lease_ttl_s=settings.saga_lease_ttl_s,
        client_address=client_ip(
            request, forwarded_allow_ips=settings.platform.forwarded_allow_ips
        ),
        phone_ref=orders.phone_ref_of(user),
        first_steps=first.records,
    )
    # Written already (autocommit): this hands the connection back while the saga runs.
    await commit(session)
    if created:
        runner.start(order.id, begun=runner.begun(order, first, leased_at=leased_at))
    order = await orders.wait_for_saga(
        session, runner, order.id, timeout_s=settings.checkout_wait_s, redis_breaker=redis_breaker
    )
    if order.status == OrderStatus.FAILED and order.reason == Reason.FRAUD_REFUSED:
        raise CheckoutRefused(
            "This checkout was refused. Contact support if you think this is a mistake.",
            order_id=str(order.id),
            reason=Reason.FRAUD_REFUSED.value,
        )
    response.headers["Location"] = location(order.id)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    if not orders.settled(order):
        response.status_code = status.HTTP_202_ACCEPTED
    elif not created:
        response.status_code = status.HTTP_200_OK
    return OrderOut.model_validate(order)


@router.get("", responses=responses(422))
async def list_my_orders(
    user: CurrentUser,
    shards: ShardsDep,
    paging: OrderPaging,
    status_filter: StatusFilter = None,
) -> OrderPage:
    """The caller's orders, newest first."""
    items, total = await shards.list_orders(
        user_id=user.subject, statuses=status_filter, page=paging.page, size=paging.size
    )
    return OrderPage(
        items=[OrderOut.model_validate(order) for order in items],
        total=total,
        page=paging.page,
        size=paging.size,
    )


@router.get("/{order_id}", responses=responses(OrderNotFound))
async def get_my_order(order_id: UUID, user: CurrentUser, session: CustomerSessionDep) -> OrderOut:
    """One of the caller's orders (another user's answers 404)."""
    order = await orders.get_order(session, order_id=order_id, user_id=user.subject)
    return OrderOut.model_validate(order)


@router.post(
    "/{order_id}/cancel",
    responses={**_IN_PROGRESS, **responses(OrderNotFound, OrderNotCancellable)},
)
async def cancel_my_order(
    order_id: UUID,
    user: CurrentUser,
    session: CustomerSessionDep,
    shard: CustomerShardDep,
    settings: SettingsDep,
    response: Response,
) -> OrderOut:
    """Cancel an order not yet shipped: payment refunded, stock released, parcel cancelled.

    200 once CANCELLED, 202 while compensation runs; 409 once shipped."""
    runner = shard.saga_runner
    order, start = await orders.request_cancel(
        session,
        order_id=order_id,
        user_id=user.subject,
        reason=Reason.CANCELLED_BY_CUSTOMER,
        lease_owner=runner.owner,
        lease_ttl_s=settings.saga_lease_ttl_s,
    )
    await commit(session)  # the saga must find the request committed and the row unlocked
    if start:
        runner.start(order.id)
    order = await orders.wait_for_saga(
        session, runner, order.id, timeout_s=settings.checkout_wait_s
    )
    if not orders.settled(order):
        response.status_code = status.HTTP_202_ACCEPTED
        response.headers["Location"] = location(order.id)
    return OrderOut.model_validate(order)
