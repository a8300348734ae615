"""``/api/v1/admin/orders``: staff list and read orders; admins move and cancel them."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from orders_service.api.common import StatusFilter
from orders_service.deps import (
    AdminAudit,
    OrderPaging,
    OrderSessionDep,
    OrderShardDep,
    RedisDep,
    SettingsDep,
    ShardsDep,
    StaffUser,
)
from orders_service.domain.saga import OrderStatus, Reason
from orders_service.errors import (
    InvalidStatusTransition,
    OrderNotCancellable,
    OrderNotFound,
    OrderNotOnHold,
)
from orders_service.schemas import (
    AdminOrderOut,
    AdminOrderPage,
    Review,
    SagaStepOut,
    StatusChange,
)
from orders_service.service import orders
from orders_service.service.saga.runner import SagaRunner
from orders_service.settings import OrdersSettings
from storefront_kit.db import commit
from storefront_kit.problems import responses

__all__ = ["router"]

PREFIX = "/api/v1/admin/orders"
router = APIRouter(prefix=PREFIX, tags=["admin: orders"], responses=responses(401, 403))
UserFilter = Annotated[str | None, Query(min_length=1, max_length=64)]
_IN_PROGRESS: dict[int | str, dict[str, Any]] = {
    202: {"model": AdminOrderOut, "description": "Compensation still running."},
}


@router.get("", responses=responses(422))
async def list_orders(
    _staff: StaffUser,
    shards: ShardsDep,
    paging: OrderPaging,
    status_filter: StatusFilter = None,
    user_id: UserFilter = None,
) -> AdminOrderPage:
    """All orders, newest first; filter by status (repeatable) and user."""
    items, total = await shards.list_orders(
        user_id=user_id, statuses=status_filter, page=paging.page, size=paging.size
    )
    return AdminOrderPage(
        items=[AdminOrderOut.model_validate(order) for order in items],
        total=total,
        page=paging.page,
        size=paging.size,
    )


async def _detailed(session: AsyncSession, out: AdminOrderOut) -> AdminOrderOut:
    steps = await orders.order_steps(session, order_id=out.id)
    out.steps = [SagaStepOut.model_validate(step) for step in steps]
    return out


async def _once_settled(
    session: AsyncSession,
    runner: SagaRunner,
    settings: OrdersSettings,
    response: Response,
    order_id: UUID,
) -> AdminOrderOut:
    """The order once its saga settled again (200), or as it stands after the wait (202,
    ``Location`` to poll)."""
    order = await orders.wait_for_saga(
        session, runner, order_id, timeout_s=settings.checkout_wait_s
    )
    if not orders.settled(order):
        response.status_code = status.HTTP_202_ACCEPTED
        response.headers["Location"] = f"{PREFIX}/{order.id}"
    return await _detailed(session, AdminOrderOut.model_validate(order))


@router.get("/{order_id}", responses=responses(OrderNotFound))
async def get_order(order_id: UUID, _staff: StaffUser, session: OrderSessionDep) -> AdminOrderOut:
    """Any order, with its saga steps (attempts, errors, provider references)."""
    order = await orders.get_order(session, order_id=order_id)
    return await _detailed(session, AdminOrderOut.model_validate(order))


@router.post("/{order_id}/status", responses=responses(OrderNotFound, InvalidStatusTransition, 422))
async def change_status(
    order_id: UUID, body: StatusChange, audit: AdminAudit, session: OrderSessionDep
) -> AdminOrderOut:
    """Move a confirmed order along PROCESSING → SHIPPED → DELIVERED (audited; 409 otherwise)."""
    order = await orders.change_status(
        session, order_id=order_id, target=OrderStatus(body.status), audit=audit
    )
    return await _detailed(session, AdminOrderOut.model_validate(order))


@router.post(
    "/{order_id}/cancel",
    responses={**_IN_PROGRESS, **responses(OrderNotFound, OrderNotCancellable)},
)
async def cancel_order(
    order_id: UUID,
    audit: AdminAudit,
    session: OrderSessionDep,
    shard: OrderShardDep,
    settings: SettingsDep,
    response: Response,
) -> AdminOrderOut:
    """Cancel an order not yet shipped, refunding the payment (audited; 200 done, 202 running)."""
    runner = shard.saga_runner
    order, start = await orders.request_cancel(
        session,
        order_id=order_id,
        user_id=None,
        reason=Reason.CANCELLED_BY_ADMIN,
        lease_owner=runner.owner,
        lease_ttl_s=settings.saga_lease_ttl_s,
        audit=audit,
    )
    await commit(session)  # the saga must find the request committed and the row unlocked
    if start:
        runner.start(order.id)
    return await _once_settled(session, runner, settings, response, order.id)


@router.post(
    "/{order_id}/review",
    responses={**_IN_PROGRESS, **responses(OrderNotFound, OrderNotOnHold, 422)},
)
async def review_order(
    order_id: UUID,
    body: Review,
    audit: AdminAudit,
    session: OrderSessionDep,
    shard: OrderShardDep,
    settings: SettingsDep,
    redis: RedisDep,
    response: Response,
) -> AdminOrderOut:
    """Decide on an order a fraud rule put ON_HOLD: `approve` lets its saga go on
    (payment, shipment...), `reject` compensates it (FAILED `fraud_rejected`).
    200 once the saga settled again, 202 while it runs; 409 unless ON_HOLD."""
    runner = shard.saga_runner
    order = await orders.review_order(
        session,
        order_id=order_id,
        approve=body.decision == "approve",
        audit=audit,
        note=body.note,
        lease_owner=runner.owner,
        lease_ttl_s=settings.saga_lease_ttl_s,
    )
    await commit(session)  # the saga must find the decision committed and the row unlocked
    await orders.publish_review(
        redis, order, approve=body.decision == "approve", actor=audit.actor_id
    )
    runner.start(order.id)
    return await _once_settled(session, runner, settings, response, order.id)
