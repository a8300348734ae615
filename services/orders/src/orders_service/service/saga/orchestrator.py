"""Runs one order's saga: persisted steps, idempotent provider calls, compensation.

Each step is recorded before it runs (``running``, one more attempt) and after it ends,
in transactions that lock the order row and check that this replica still holds the
saga's lease. A crash at any point leaves either a step marked ``running`` (it is run
again: provider calls carry idempotency keys derived from the order id and the step)
or a recorded outcome; the recovery worker resumes from there. While a saga runs, a
heartbeat renews its lease; if another replica took it over, this run stops at once.

The order row goes through these transactions without the ORM (issue 17): read
``FOR UPDATE`` into a plain :class:`~orders_service.repository.OrderRow`, changed in
place by the step handlers and ``transition``, and written back, with the step rows and
events, by one statement just before the commit (:meth:`SagaOrchestrator._locked`). A
step's outcome is usually that one statement alone, guarded by the row as this replica
last wrote it (:meth:`SagaOrchestrator._write`).

What each step calls and what its outcome changes on the order is its handler's
(:mod:`orders_service.service.saga.steps`); this module is the loop around them.
"""

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from prometheus_client import Counter, Histogram
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orders_service import repository
from orders_service.clients.alerts import publish_alert
from orders_service.domain.saga import (
    ACTIONS,
    IN_FLIGHT,
    OrderStatus,
    Reason,
    Step,
    StepStatus,
    compensations_needed,
    next_action,
    status_after,
)
from orders_service.models import CustomerOrder, SagaStep
from orders_service.repository import OrderRow, StepRecord, receipt, stage_event
from orders_service.service.saga.failures import Failure, classify
from orders_service.service.saga.steps import STEPS, Alert, StepContext, StepOutcome
from orders_service.service.saga.steps import action as action_handler
from orders_service.service.transitions import transition
from orders_service.settings import OrdersSettings
from storefront_kit.db import unit_of_work
from storefront_kit.logging import get_logger

__all__ = ["Begun", "FirstSteps", "LeaseLost", "SagaOrchestrator"]

logger = get_logger(__name__)
T = TypeVar("T")

SAGAS_SETTLED = Counter(
    "orders_saga_settled_total", "Sagas that reached their end.", ["status", "reason"]
)
STEP_OUTCOMES = Counter(
    "orders_saga_steps_total", "Saga step executions by outcome.", ["step", "status"]
)
STEP_SECONDS = Histogram(
    "orders_saga_step_seconds",
    "Duration of saga steps (provider calls included).",
    ["step"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ROW_CHANGED = Counter(
    "orders_saga_row_changed_total",
    "Step outcomes written on the locked row: the row changed while the step ran.",
)
#: After this many postponed rounds a stuck saga is reported to admins (once).
ALERT_AFTER_ROUNDS = 3
#: The last action: its success confirms the order and ends the saga.
FINAL_ACTION = ACTIONS[-1]


async def _compensate_cancel(session: AsyncSession, order: OrderRow) -> None:
    """A cancel asked while a step ran wins: compensate towards CANCELLED (for the reason
    given with the cancel, the customer's by default)."""
    await transition(
        session,
        order,
        OrderStatus.COMPENSATING,
        outcome=OrderStatus.CANCELLED,
        reason=order.reason or Reason.CANCELLED_BY_CUSTOMER,
    )


class LeaseLost(Exception):
    """Another replica holds this saga's lease now: stop without touching it."""


class _RowChanged(Exception):
    """The order's row is no longer the one a step ran with: written by the locked path."""


@dataclass(frozen=True)
class _Completed:
    """What recording a step's outcome decided, for after it is written."""

    alerts: list[Alert]
    records: list[StepRecord]
    pending: dict[Step, StepStatus]
    following: Step | None
    cancelling: bool


@dataclass(frozen=True)
class FirstSteps:
    """What a new checkout's saga records with the order's insert (one statement,
    :func:`~orders_service.repository.insert_order`): the idle steps skipped, then its
    first action ``running``."""

    action: Step
    statuses: dict[Step, StepStatus]
    records: list[StepRecord]


@dataclass(frozen=True)
class Begun:
    """A new checkout's first action, recorded ``running`` by the statement that
    inserted the order (:meth:`SagaOrchestrator.begun`), to be run at once."""

    order: OrderRow
    action: Step
    statuses: dict[Step, StepStatus]
    #: The records written (the idle steps skipped, then the action started).
    records: list[StepRecord]
    #: ``time.monotonic()`` after which the lease the insert took may be running out:
    #: a saga task that starts later checks it first (the ordinary path).
    use_before: float


class SagaOrchestrator:
    """Drives sagas this replica holds the lease of."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        steps: StepContext,
        redis: Redis,
        settings: OrdersSettings,
        owner: str,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._steps = steps  # what the step handlers call: the orchestrator calls none
        self._redis = redis
        self._settings = settings
        self.owner = owner

    # --- entry point ----------------------------------------------------------------------

    def first_steps(self) -> FirstSteps:
        """What a new checkout's insert records for its saga (no statement of its own):
        the steps with nothing to do (a fraud step with no rule) with their outcome,
        then the first action ``running``."""
        pending: dict[Step, StepStatus] = {}
        records: list[StepRecord] = []
        action = self._skip_idle(next_action(pending) or FINAL_ACTION, pending, records)
        records.append(StepRecord(action, StepStatus.RUNNING, new_attempt=True))
        return FirstSteps(
            action=action, statuses={**pending, action: StepStatus.RUNNING}, records=records
        )

    def begun(self, order: CustomerOrder, first: FirstSteps, *, leased_at: float) -> Begun:
        """A new checkout whose insert wrote ``first`` and took the lease for this
        replica: its saga needs no transaction before the first call (:meth:`run`).

        ``leased_at``: ``time.monotonic()`` taken before that insert was sent.
        """
        return Begun(
            order=repository.order_row(order),
            action=first.action,
            statuses=dict(first.statuses),
            records=first.records,
            # half the lease: the heartbeat (every third of it) renews it in time
            use_before=leased_at + self._settings.saga_lease_ttl_s / 2,
        )

    async def run(self, order_id: UUID, *, begun: Begun | None = None) -> None:
        """Drive the saga until it settles, must wait for a retry, or the lease is lost.

        ``begun``: a new checkout whose insert recorded its first action ``running``
        (:meth:`begun`): it is called at once, with nothing read before.
        """
        if begun is not None:
            self._count_skipped(begun.records)
        task = asyncio.current_task()
        assert task is not None
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(order_id, task, lost))
        try:
            await self._drive(order_id, begun=begun)
        except LeaseLost:
            logger.info("saga_lease_lost", order_id=str(order_id))
        except asyncio.CancelledError:
            if not lost.is_set():
                raise
            task.uncancel()
            logger.warning("saga_lease_lost", order_id=str(order_id), during="step")
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _heartbeat(
        self, order_id: UUID, driver: asyncio.Task[Any], lost: asyncio.Event
    ) -> None:
        ttl = self._settings.saga_lease_ttl_s
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                async with unit_of_work(self._sessionmaker) as session:
                    held = await repository.renew_lease(
                        session, order_id=order_id, owner=self.owner, lease_ttl_s=ttl
                    )
            except Exception as exc:  # the step transactions check the lease too
                logger.warning("saga_heartbeat_failed", order_id=str(order_id), error=repr(exc))
                continue
            if not held:
                if await self._released(order_id):
                    return  # the driver handed the lease back itself: it is finishing
                lost.set()
                driver.cancel()
                return

    async def _released(self, order_id: UUID) -> bool:
        """Whether nobody holds the saga (it settled or was put off), rather than another."""
        async with self._sessionmaker() as session:
            order = await repository.read_order_row(session, order_id)
        return order is None or order.lease_owner is None

    # --- transactions -------------------------------------------------------------------

    @asynccontextmanager
    async def _locked(self, order_id: UUID) -> AsyncIterator[tuple[AsyncSession, OrderRow]]:
        """A transaction holding the order row, for as long as this replica holds the lease.

        What the block changed on the row is written when it ends, in the same
        transaction, and then the events it staged (nothing if it raised: the
        transaction rolls back).
        """
        async with unit_of_work(self._sessionmaker) as session:
            order = await repository.lock_order_row(session, order_id)
            if order is None or order.lease_owner != self.owner:
                raise LeaseLost(str(order_id))
            yield session, order
            await repository.write_saga_changes(session, order)

    async def _write(
        self, known: OrderRow, change: Callable[[AsyncSession, OrderRow], Awaitable[T]]
    ) -> tuple[OrderRow, T]:
        """Apply ``change`` to the order's row and write it: one step transaction.

        ``known`` is the row as this replica's previous step transaction left it. If
        nothing has changed it since (no cancel asked, the same version and user, still
        this replica's lease), ``change`` runs on a copy of it and what it changed is
        written by one guarded statement with no transaction around it: no locked read,
        no ``BEGIN``, no ``COMMIT``, a round trip each (issue 17). If something did change
        the row, that statement wrote nothing, and ``change`` runs again on the row
        locked (:meth:`_locked`), as every other step transaction does.
        """
        if known.lease_owner == self.owner and not known.cancel_requested and known.stored:
            order = dataclasses.replace(known)
            try:
                async with unit_of_work(self._sessionmaker) as session:
                    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
                    result = await change(session, order)
                    if not await repository.write_saga_changes(session, order, if_unchanged=True):
                        raise _RowChanged(str(known.id))
            except _RowChanged:
                ROW_CHANGED.inc()
            else:
                return order, result
        async with self._locked(known.id) as (session, order):
            result = await change(session, order)
        return order, result

    async def _snapshot(self, order_id: UUID) -> tuple[OrderRow | None, dict[Step, SagaStep]]:
        async with self._sessionmaker() as session:
            order = await repository.read_order_row(session, order_id)
            steps = await repository.steps_of(session, order_id) if order else {}
        return order, steps

    async def _start_step(self, order_id: UUID, step: Step) -> OrderRow:
        async with self._locked(order_id) as (session, order):
            repository.stage_steps(
                session, [StepRecord(step, StepStatus.RUNNING, new_attempt=True)]
            )
        return order

    async def _start_action(
        self, order_id: UUID, action: Step, statuses: dict[Step, StepStatus]
    ) -> tuple[OrderRow, Step]:
        """Record ``action`` running (after the idle steps from it on), in one transaction."""
        pending = dict(statuses)
        records: list[StepRecord] = []
        action = self._skip_idle(action, pending, records)
        records.append(StepRecord(action, StepStatus.RUNNING, new_attempt=True))
        async with self._locked(order_id) as (session, order):
            repository.stage_steps(session, records)
        self._count_skipped(records)
        statuses.update(pending)
        statuses[action] = StepStatus.RUNNING
        return order, action

    def _skip_idle(
        self, step: Step, pending: dict[Step, StepStatus], records: list[StepRecord]
    ) -> Step:
        """Add a record for every step from ``step`` on that has nothing to do (a fraud
        step with no rule) with its outcome, to be written in the caller's transaction;
        the first step that has something to do."""
        while (outcome := action_handler(step).idle(self._steps)) is not None:
            records.append(
                StepRecord(step, outcome.status, new_attempt=True, result=outcome.result)
            )
            pending[step] = outcome.status
            step = next_action(pending) or FINAL_ACTION
        return step

    @staticmethod
    def _count_skipped(records: list[StepRecord]) -> None:
        """Count the idle steps of committed ``records`` (all but the one started)."""
        for record in records[:-1]:
            STEP_OUTCOMES.labels(record.step.value, record.status.value).inc()

    # --- forward path ---------------------------------------------------------------------

    async def _drive(self, order_id: UUID, *, begun: Begun | None) -> None:
        # One snapshot per run: from then on this replica is the only writer of the
        # saga's steps (the lease), and every step transaction hands back the order row
        # it locked, so the next step starts from that instead of reading it again.
        # A new checkout needs none: the request's insert recorded its first action
        # running and handed over the row it inserted (unless the lease it took may
        # be running out by now: then the snapshot, and the action is started anew).
        started: Step | None = None  # recorded ``running`` by the previous step's commit
        statuses: dict[Step, StepStatus] = {}
        if begun is not None and time.monotonic() < begun.use_before:
            order, started, statuses = begun.order, begun.action, dict(begun.statuses)
        else:
            snapshot, steps = await self._snapshot(order_id)
            if snapshot is None:
                return
            order = snapshot
            statuses = {step: StepStatus(row.status) for step, row in steps.items()}
        while True:
            if order.lease_owner != self.owner:
                return  # settled (the lease was cleared with it) or never ours
            status = OrderStatus(order.status)
            if status not in IN_FLIGHT:
                await self._release(order_id)
                return
            if status == OrderStatus.COMPENSATING:
                await self._compensate(order, statuses)
                return
            if order.cancel_requested:
                order = await self._begin_compensation(
                    order_id,
                    outcome=OrderStatus.CANCELLED,
                    reason=order.reason or Reason.CANCELLED_BY_CUSTOMER,
                )
                continue
            action, started = started, None
            if action is None:
                # every action recorded: only the final status is missing
                action = next_action(statuses) or FINAL_ACTION
                order, action = await self._start_action(order_id, action, statuses)
            outcome = await self._perform(action, order)
            if isinstance(outcome, Exception):
                failure = classify(action, outcome)
                STEP_OUTCOMES.labels(action.value, failure.step_status.value).inc()
                if failure.reason == Reason.INTERNAL_ERROR:
                    logger.error(
                        "saga_step_crashed",
                        order_id=str(order_id),
                        step=action.value,
                        exc_info=outcome,
                    )
                else:
                    logger.info(
                        "saga_step_failed",
                        order_id=str(order_id),
                        step=action.value,
                        reason=failure.reason.value,
                        detail=failure.detail,
                    )
                if failure.retry_later:
                    await self._postpone(order_id, action, failure.detail)
                    return
                order = await self._fail(order_id, action, failure)
                statuses[action] = failure.step_status
                continue
            if outcome.status == StepStatus.HELD:
                order = await self._hold(order_id, action, outcome)
                statuses[action] = StepStatus.HELD
                continue
            order, started = await self._complete(order, action, outcome, statuses)

    async def _perform(self, step: Step, order: OrderRow) -> StepOutcome | Exception:
        """Run ``step``'s handler, timed; what it raised is returned (counted by the
        caller, which classifies it), except a cancellation."""
        began = time.perf_counter()
        try:
            outcome = await STEPS[step].perform(order, self._steps)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            STEP_SECONDS.labels(step.value).observe(time.perf_counter() - began)
            return exc
        STEP_SECONDS.labels(step.value).observe(time.perf_counter() - began)
        STEP_OUTCOMES.labels(step.value, outcome.status.value).inc()
        return outcome

    async def _complete(
        self, known: OrderRow, step: Step, outcome: StepOutcome, statuses: dict[Step, StepStatus]
    ) -> tuple[OrderRow, Step | None]:
        """Record ``step``'s outcome and, in the same write, start the next action.

        Starting the next action here (``running``, one more attempt) is what a separate
        transaction before its call would record: a crash after this commit runs it
        again with the same idempotency key. The next action, if any, is returned.
        ``known`` is the row the step ran with (:meth:`_write`); ``statuses`` is updated
        once the write committed.
        """

        async def record(session: AsyncSession, order: OrderRow) -> _Completed:
            pending = {**statuses, step: outcome.status}
            records = [StepRecord(step, outcome.status, result=outcome.result)]
            following: Step | None = None
            previous, target = order.status, status_after(step)
            cancelling = order.cancel_requested
            if not cancelling:
                # Set before the step applies its outcome: the events it stages carry
                # the status it leads to (``order.created`` says RESERVED), and
                # ``order.status_changed`` follows them (with the tracking number).
                order.status = target
            alerts = STEPS[step].apply(session, order, outcome)
            if cancelling:
                await _compensate_cancel(session, order)
            elif step == FINAL_ACTION:
                stage_event(
                    session,
                    order,
                    "order.confirmed",
                    {**receipt(order), "tracking_number": order.tracking_number},
                )
                await transition(
                    session, order, target, previous=previous, release_lease_of=self.owner
                )
            else:
                await transition(session, order, target, previous=previous)
                following = next_action(pending) or FINAL_ACTION
                following = self._skip_idle(following, pending, records)
                records.append(StepRecord(following, StepStatus.RUNNING, new_attempt=True))
            # written with the row: the outcome, the idle steps skipped and the next start
            repository.stage_steps(session, records)
            return _Completed(alerts, records, pending, following, cancelling)

        order, done = await self._write(known, record)
        if done.following is not None:
            self._count_skipped(done.records[1:])
        statuses[step] = outcome.status
        if done.following is not None:
            statuses.update(done.pending)
            statuses[done.following] = StepStatus.RUNNING
        if step == FINAL_ACTION and not done.cancelling:
            SAGAS_SETTLED.labels(OrderStatus.CONFIRMED.value, "").inc()
        await self._publish(done.alerts)
        return order, done.following

    async def _hold(self, order_id: UUID, step: Step, outcome: StepOutcome) -> OrderRow:
        """Park the order ON_HOLD for a staff review (the lease goes with it: no replica
        runs the saga until staff decide); a cancel that arrived meanwhile wins."""
        async with self._locked(order_id) as (session, order):
            repository.stage_steps(
                session, [StepRecord(step, StepStatus.HELD, result=outcome.result)]
            )
            if order.cancel_requested:
                await _compensate_cancel(session, order)
            else:
                await transition(session, order, OrderStatus.ON_HOLD, release_lease_of=self.owner)
        logger.info("saga_on_hold", order_id=str(order_id), step=step.value)
        return order

    async def _publish(self, alerts: list[Alert]) -> None:
        for alert_type, data in alerts:
            await publish_alert(self._redis, alert_type, data)

    async def _begin_compensation(
        self, order_id: UUID, *, outcome: OrderStatus, reason: str
    ) -> OrderRow:
        async with self._locked(order_id) as (session, order):
            await transition(
                session, order, OrderStatus.COMPENSATING, outcome=outcome, reason=reason
            )
        return order

    async def _fail(self, order_id: UUID, step: Step, failure: Failure) -> OrderRow:
        async with self._locked(order_id) as (session, order):
            repository.stage_steps(
                session, [StepRecord(step, failure.step_status, error=failure.detail)]
            )
            if order.cancel_requested:
                outcome, reason = OrderStatus.CANCELLED, order.reason or failure.reason
            else:
                outcome, reason = OrderStatus.FAILED, failure.reason
            await transition(
                session,
                order,
                OrderStatus.COMPENSATING,
                outcome=outcome,
                reason=reason,
                detail=failure.detail,
            )
        return order

    async def _postpone(self, order_id: UUID, step: Step, error: str) -> None:
        """Record the failure and hand the saga back, to be retried after a back-off."""
        settings = self._settings
        async with self._locked(order_id) as (session, order):
            repository.stage_steps(session, [StepRecord(step, StepStatus.FAILED, error=error)])
            order.retry_rounds += 1
            rounds = order.retry_rounds
            delay = min(
                settings.compensation_retry_initial_s * 2 ** (rounds - 1),
                settings.compensation_retry_max_s,
            )
            await repository.release_lease(
                session, order_id=order_id, owner=self.owner, retry_in_s=delay
            )
            data = {
                "order_id": str(order.id),
                "user_id": order.user_id,
                "status": order.status,
                "reason": order.reason,
                "step": step.value,
                "error": error,
                "retry_rounds": rounds,
            }
        logger.warning("saga_postponed", order_id=str(order_id), step=step.value, retry_in_s=delay)
        if rounds == ALERT_AFTER_ROUNDS:
            await publish_alert(self._redis, "saga.failed", {**data, "stuck": True})

    async def _release(self, order_id: UUID) -> None:
        async with unit_of_work(self._sessionmaker) as session:
            await repository.release_lease(session, order_id=order_id, owner=self.owner)

    # --- compensation -----------------------------------------------------------------------

    async def _compensate(self, order: OrderRow, statuses: dict[Step, StepStatus]) -> None:
        for step in compensations_needed(statuses):
            await self._start_step(order.id, step)
            outcome = await self._perform(step, order)
            if isinstance(outcome, Exception):
                STEP_OUTCOMES.labels(step.value, StepStatus.FAILED.value).inc()
                logger.warning(
                    "saga_compensation_failed",
                    order_id=str(order.id),
                    step=step.value,
                    error=repr(outcome),
                )
                await self._postpone(order.id, step, f"{type(outcome).__name__}: {outcome}")
                return
            await self._record_compensation(order.id, step, outcome)
        await self._settle(order.id)

    async def _record_compensation(self, order_id: UUID, step: Step, outcome: StepOutcome) -> None:
        async with self._locked(order_id) as (session, order):
            repository.stage_steps(
                session, [StepRecord(step, outcome.status, result=outcome.result)]
            )
            alerts = STEPS[step].apply(session, order, outcome)
        await self._publish(alerts)

    async def _settle(self, order_id: UUID) -> None:
        async with self._locked(order_id) as (session, order):
            await transition(
                session,
                order,
                OrderStatus(order.outcome or OrderStatus.FAILED),
                release_lease_of=self.owner,
            )
            failed = order.status == OrderStatus.FAILED
            data = {
                "order_id": str(order.id),
                "user_id": order.user_id,
                "status": order.status,
                "reason": order.reason,
                "reason_detail": order.reason_detail,
                "total": order.total,
                "currency": order.currency,
            }
            if failed:
                stage_event(session, order, "order.failed", data)
        SAGAS_SETTLED.labels(data["status"], data["reason"] or "").inc()
        if failed:
            await publish_alert(self._redis, "saga.failed", data)
