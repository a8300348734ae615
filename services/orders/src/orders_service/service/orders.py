"""Order use cases behind the API (no FastAPI here).

Every use case takes the request's session and only flushes, but placing an order,
which is one statement in autocommit (:func:`place_order`). After cancelling an order
the caller commits (``storefront_kit.db.commit``) before it starts the saga: that runs
in another task and must find the row committed, leased to this replica, and unlocked.
:func:`wait_for_saga` then gives the saga a moment to settle.
"""

import asyncio
import hashlib
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

import orjson
from redis.asyncio import Redis
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from jwt_core_lib import TokenClaims
from orders_service import repository
from orders_service.clients.alerts import publish_alert
from orders_service.domain.saga import (
    IN_FLIGHT,
    CancelPlan,
    InvalidTransition,
    OrderStatus,
    Reason,
    Step,
    StepStatus,
    cancel_plan,
    check_admin_transition,
    status_after,
)
from orders_service.errors import (
    IdempotencyKeyReused,
    InvalidStatusTransition,
    OrderNotCancellable,
    OrderNotFound,
    OrderNotOnHold,
)
from orders_service.models import CustomerOrder, SagaStep
from orders_service.repository import StepRecord, stage_audit
from orders_service.schemas import OrderCreate
from orders_service.service.fraud import record_fraud_decision
from orders_service.service.saga.runner import SagaRunner
from orders_service.service.transitions import transition
from storefront_kit.audit import AuditContext
from storefront_kit.breaker import Breaker

__all__ = [
    "change_status",
    "get_order",
    "order_steps",
    "phone_ref_of",
    "place_order",
    "publish_review",
    "request_cancel",
    "request_fingerprint",
    "review_order",
    "settled",
    "wait_for_saga",
]


def request_fingerprint(body: OrderCreate) -> str:
    """SHA-256 of the validated body in canonical JSON (key order and spacing do not count)."""
    canonical = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


_PHONE_REF = re.compile(r"^[0-9a-f]{32}$")


def phone_ref_of(claims: TokenClaims) -> str | None:
    """The pseudonym of the customer's phone their access token carries (auth puts it
    there; see auth_service.fields.phone_ref), or None (a token without one)."""
    ref = claims.extra.get("phone_ref")
    return ref if isinstance(ref, str) and _PHONE_REF.match(ref) else None


def _audit(
    session: AsyncSession,
    audit: AuditContext,
    action: str,
    order_id: UUID,
    *,
    before: dict[str, Any],
    after: dict[str, Any],
) -> None:
    """Stage the audit entry of a staff action on an order."""
    stage_audit(
        session,
        audit.entry(
            action=action, target_type="order", target_id=order_id, before=before, after=after
        ),
    )


async def place_order(
    session: AsyncSession,
    *,
    user_id: str,
    idempotency_key: str,
    body: OrderCreate,
    lease_owner: str,
    lease_ttl_s: float,
    client_address: str | None = None,
    phone_ref: str | None = None,
    first_steps: Sequence[StepRecord] = (),
) -> tuple[CustomerOrder, bool]:
    """The order for this key: a new PENDING one leased to ``lease_owner`` (True), with
    the step rows of ``first_steps``, or the one the same request already created
    (False); a different request is a 409.

    Runs in autocommit (``session`` is switched before its first statement): a new
    order and its first step rows are one statement, committed when it returns, so the
    saga may start at once; the replay's read is one statement too.
    """
    request_hash = request_fingerprint(body)
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    order = await repository.insert_order(
        session,
        user_id=user_id,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        items=[item.model_dump() for item in body.items],
        shipping_address=body.shipping_address.model_dump(exclude_none=True),
        payment_method=body.payment.model_dump(),
        client_address=client_address,
        phone_ref=phone_ref,
        lease_owner=lease_owner,
        lease_ttl_s=lease_ttl_s,
        steps=first_steps,
    )
    if order is not None:
        return order, True
    # ON CONFLICT waited for the other transaction: its row is visible now.
    existing = await repository.get_order_by_key(
        session, user_id=user_id, idempotency_key=idempotency_key
    )
    assert existing is not None
    if existing.request_hash != request_hash:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request.",
            order_id=str(existing.id),
        )
    return existing, False


async def get_order(
    session: AsyncSession, *, order_id: UUID, user_id: str | None = None
) -> CustomerOrder:
    """One order (only among ``user_id``'s when given: another user's is not found)."""
    order = await repository.get_order(session, order_id, user_id=user_id)
    if order is None:
        raise OrderNotFound(f"No order {order_id}.")
    return order


async def order_steps(session: AsyncSession, *, order_id: UUID) -> list[SagaStep]:
    """The saga steps of an order in the order they first ran."""
    return list((await repository.steps_of(session, order_id)).values())


async def change_status(
    session: AsyncSession, *, order_id: UUID, target: OrderStatus, audit: AuditContext
) -> CustomerOrder:
    """Staff move a settled order along CONFIRMED → PROCESSING → SHIPPED → DELIVERED.

    A move is audited (``order.status_changed``) in its transaction; asking for the
    status the order has already changes and records nothing.
    """
    order = await repository.get_order(session, order_id, for_update=True)
    if order is None:
        raise OrderNotFound(f"No order {order_id}.")
    current = OrderStatus(order.status)
    try:
        changed = check_admin_transition(current, target)
    except InvalidTransition as exc:
        raise InvalidStatusTransition(
            str(exc).capitalize() + ".",
            order_status=current.value,
            requested=target.value,
        ) from exc
    if changed:
        version = order.version
        await transition(session, order, target)
        await session.flush()
        # updated_at is set by the database on flush: load it now, not lazily later.
        await session.refresh(order)
        _audit(
            session,
            audit,
            "order.status_changed",
            order.id,
            before={"status": current.value, "version": version},
            after={"status": order.status, "version": order.version},
        )
    return order


async def request_cancel(
    session: AsyncSession,
    *,
    order_id: UUID,
    user_id: str | None,
    reason: Reason,
    lease_owner: str,
    lease_ttl_s: float,
    audit: AuditContext | None = None,
) -> tuple[CustomerOrder, bool]:
    """Ask for an order to be cancelled; True when this replica must now run its saga.

    A running saga is told to stop (it compensates at its next step); a confirmed order
    not yet shipped starts compensating here (refund, cancel the parcel, release). With
    ``audit`` (staff) a request that changes the order is audited (``order.cancelled``)
    in its transaction, with the refund it sets off.
    """
    order = await repository.get_order(session, order_id, user_id=user_id, for_update=True)
    if order is None:
        raise OrderNotFound(f"No order {order_id}.")
    plan = cancel_plan(OrderStatus(order.status))
    if plan in (CancelPlan.ALREADY, CancelPlan.IN_PROGRESS):
        return order, False
    if plan == CancelPlan.FORBIDDEN:
        raise OrderNotCancellable(
            f"An order that is {order.status} can no longer be cancelled.",
            order_status=order.status,
        )
    before = {
        "status": order.status,
        "cancel_requested": order.cancel_requested,
        "version": order.version,
    }
    now = await repository.database_now(session)
    lease_free = (
        order.lease_owner is None
        or order.lease_expires_at is None
        or (now is not None and order.lease_expires_at < now)
    )
    if not order.cancel_requested:
        order.cancel_requested = True
        order.reason = reason
    if plan == CancelPlan.COMPENSATE:
        await transition(
            session,
            order,
            OrderStatus.COMPENSATING,
            outcome=OrderStatus.CANCELLED,
            reason=reason,
        )
    else:  # the flag alone is a change clients see: the version says so
        order.version += 1
    if lease_free:
        order.lease_owner = lease_owner
        order.lease_expires_at = func.now() + timedelta(seconds=lease_ttl_s)
    await session.flush()
    await session.refresh(order)
    if audit is not None and (plan == CancelPlan.COMPENSATE or not before["cancel_requested"]):
        _audit(
            session,
            audit,
            "order.cancelled",
            order.id,
            before=before,
            after={
                "status": order.status,
                "cancel_requested": True,
                "version": order.version,
                "reason": order.reason,
                "user_id": order.user_id,
                # What the compensation refunds: the payment taken so far, if any (a
                # saga still running refunds whatever it captures before it stops).
                "refund": (
                    {
                        "payment_id": order.payment_id,
                        "amount": order.total,
                        "currency": order.currency,
                    }
                    if order.payment_id
                    else None
                ),
            },
        )
    return order, lease_free


async def review_order(
    session: AsyncSession,
    *,
    order_id: UUID,
    approve: bool,
    audit: AuditContext,
    note: str | None,
    lease_owner: str,
    lease_ttl_s: float,
) -> CustomerOrder:
    """Staff decide on an order ON_HOLD: approval lets its saga go on from the held fraud
    step, rejection compensates it (FAILED ``fraud_rejected``). Either way the order is
    leased to ``lease_owner``, whose caller starts the saga once this committed."""
    order = await repository.get_order(session, order_id, for_update=True)
    if order is None:
        raise OrderNotFound(f"No order {order_id}.")
    if order.status != OrderStatus.ON_HOLD:
        raise OrderNotOnHold(
            f"Only an order ON_HOLD can be reviewed; this one is {order.status}.",
            order_status=order.status,
        )
    steps = await repository.steps_of(session, order_id)
    held = next((Step(row.step) for row in steps.values() if row.status == StepStatus.HELD), None)
    assert held is not None, "an order ON_HOLD has a held step"
    row = steps[held]
    before = {"status": order.status, "version": order.version}
    review = {"decision": "approve" if approve else "reject", "by": audit.actor_id, "note": note}
    result = {**(row.result or {}), "review": review}
    if approve:
        await repository.record_step(session, order, held, StepStatus.SUCCEEDED, result=result)
        await transition(session, order, status_after(held))
    else:
        await repository.record_step(
            session, order, held, StepStatus.REJECTED, result=result, error="rejected by staff"
        )
        await transition(
            session,
            order,
            OrderStatus.COMPENSATING,
            outcome=OrderStatus.FAILED,
            reason=Reason.FRAUD_REJECTED,
            detail=note,
        )
    order.lease_owner = lease_owner
    order.lease_expires_at = func.now() + timedelta(seconds=lease_ttl_s)
    await record_fraud_decision(
        session=session,
        order=order,
        stage=held.value,
        decision=review["decision"] or "",
        rules=list((row.result or {}).get("rules", [])),
        actor=audit.actor_id,
        note=note,
    )
    await session.flush()
    await session.refresh(order)
    _audit(
        session,
        audit,
        "order.reviewed",
        order.id,
        before=before,
        after={
            "status": order.status,
            "version": order.version,
            "decision": review["decision"],
            "step": held.value,
            "rules": list((row.result or {}).get("rules", [])),
            "note": note,
        },
    )
    return order


async def publish_review(redis: Redis, order: CustomerOrder, *, approve: bool, actor: str) -> None:
    """Tell the admins a held order was decided (``fraud.approved``/``fraud.rejected``);
    after the decision committed."""
    await publish_alert(
        redis,
        "fraud.approved" if approve else "fraud.rejected",
        {"order_id": str(order.id), "user_id": order.user_id, "by": actor},
    )


def settled(order: CustomerOrder) -> bool:
    """True once the saga is over (confirmed, failed, cancelled or later)."""
    return OrderStatus(order.status) not in IN_FLIGHT


async def wait_for_saga(
    session: AsyncSession,
    runner: SagaRunner,
    order_id: UUID,
    *,
    timeout_s: float,
    redis_breaker: Breaker | None = None,
) -> CustomerOrder:
    """The order after its saga ran here for at most ``timeout_s`` (never cancelled),
    or as soon as ``redis_breaker`` is open: the saga's provider breakers keep their
    state in Redis, so with Redis down it cannot progress, and the caller gets its 202
    at once instead of waiting out the window.

    ``session`` holds no connection while it waits: the caller committed before. The
    answer is read in autocommit: one statement alone, with no ``BEGIN`` and ``COMMIT``
    around it (two round trips fewer per checkout, issue 17); under READ COMMITTED a
    transaction would give each statement its own snapshot all the same.
    """
    task = runner.task_for(order_id)
    if task is not None and timeout_s > 0:
        if redis_breaker is None:
            await asyncio.wait({task}, timeout=timeout_s)
        elif not redis_breaker.is_open:
            opened = asyncio.ensure_future(redis_breaker.wait_open())
            try:
                await asyncio.wait(
                    {task, opened}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                opened.cancel()
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return await get_order(session, order_id=order_id)
