"""Many sagas in one replica: start new ones, recover abandoned ones, stop cleanly.

New checkouts are leased to this replica when the order row is inserted and start at
once. :meth:`SagaRunner.recover_once`, which the recovery loop runs at start-up, then
every ``recovery_interval_s`` (:mod:`orders_service.workers.saga_recovery`), claims
in-flight sagas whose lease expired (their replica died) or whose retry is due, with
``FOR UPDATE SKIP LOCKED`` so replicas never take the same one. On shutdown the sagas
still running are cancelled and their leases handed back at once, so another replica
resumes them without waiting for the lease to run out.
"""

import asyncio
import functools
import os
import socket
import uuid
from uuid import UUID

from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orders_service import repository
from orders_service.models import CustomerOrder
from orders_service.service.saga.orchestrator import Begun, FirstSteps, SagaOrchestrator
from storefront_kit.db import unit_of_work
from storefront_kit.error_reporting import report_exception
from storefront_kit.logging import get_logger

__all__ = ["SagaRunner", "replica_id"]

logger = get_logger(__name__)

SAGAS_RUNNING = Gauge("orders_sagas_running", "Sagas this replica is running now.")
SAGAS_RECOVERED = Counter("orders_sagas_recovered_total", "Sagas claimed by the recovery loop.")


def replica_id() -> str:
    """A name for this process that is unique across restarts (lease owner)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SagaRunner:
    """Runs sagas as tasks, at most ``max_concurrent`` at a time."""

    def __init__(
        self,
        orchestrator: SagaOrchestrator,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        max_concurrent: int,
        lease_ttl_s: float,
        recovery_batch_size: int,
        retry_after_error_s: float = 1.0,
    ) -> None:
        self._orchestrator = orchestrator
        self._sessionmaker = sessionmaker
        self._max_concurrent = max_concurrent
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._lease_ttl_s = lease_ttl_s
        self._batch_size = recovery_batch_size
        self._retry_s = retry_after_error_s
        self._tasks: dict[UUID, asyncio.Task[None]] = {}
        self._closing = False

    @property
    def recovery_batch_size(self) -> int:
        """The most sagas one :meth:`recover_once` claims."""
        return self._batch_size

    @property
    def owner(self) -> str:
        """The lease owner name of this replica."""
        return self._orchestrator.owner

    def task_for(self, order_id: UUID) -> asyncio.Task[None] | None:
        """The task running ``order_id``'s saga here, if any."""
        return self._tasks.get(order_id)

    def first_steps(self) -> FirstSteps:
        """What a new checkout's insert records for its saga
        (:meth:`SagaOrchestrator.first_steps`)."""
        return self._orchestrator.first_steps()

    def begun(self, order: CustomerOrder, first: FirstSteps, *, leased_at: float) -> Begun:
        """A new checkout inserted with ``first`` (:meth:`SagaOrchestrator.begun`):
        :meth:`start` it."""
        return self._orchestrator.begun(order, first, leased_at=leased_at)

    def start(self, order_id: UUID, *, begun: Begun | None = None) -> asyncio.Task[None] | None:
        """Run the saga of ``order_id`` (leased to this replica) unless it already runs.

        ``begun``: a new checkout, its first action recorded by its insert (:meth:`begun`).
        """
        if self._closing:
            return None
        existing = self._tasks.get(order_id)
        if existing is not None and not existing.done():
            return existing
        task = asyncio.create_task(self._run(order_id, begun=begun), name=f"saga-{order_id}")
        self._tasks[order_id] = task
        task.add_done_callback(functools.partial(self._forget, order_id))
        return task

    def _forget(self, order_id: UUID, task: asyncio.Task[None]) -> None:
        if self._tasks.get(order_id) is task:
            del self._tasks[order_id]

    async def _run(self, order_id: UUID, *, begun: Begun | None) -> None:
        async with self._semaphore:
            SAGAS_RUNNING.inc()
            try:
                await self._orchestrator.run(order_id, begun=begun)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.exception("saga_run_failed", order_id=str(order_id))
                report_exception(exc)
                await self._hand_back(order_id)
            finally:
                SAGAS_RUNNING.dec()

    async def _hand_back(self, order_id: UUID) -> None:
        """After an unexpected error (a pool timeout, a database blip), let recovery retry
        the saga soon instead of after the whole lease; if even that fails, it runs out."""
        try:
            async with unit_of_work(self._sessionmaker) as session:
                await repository.release_lease(
                    session, order_id=order_id, owner=self.owner, retry_in_s=self._retry_s
                )
        except Exception as exc:
            logger.warning("saga_lease_handback_failed", order_id=str(order_id), error=repr(exc))

    async def recover_once(self) -> int:
        """Claim and start the sagas that are due; how many were claimed."""
        free = self._max_concurrent - len(self._tasks)
        if free <= 0 or self._closing:
            return 0
        async with unit_of_work(self._sessionmaker) as session:
            ids = await repository.claim_expired_sagas(
                session,
                owner=self.owner,
                lease_ttl_s=self._lease_ttl_s,
                limit=min(free, self._batch_size),
            )
        for order_id in ids:
            self.start(order_id)
        if ids:
            SAGAS_RECOVERED.inc(len(ids))
            logger.info("sagas_recovered", count=len(ids))
        return len(ids)

    async def shutdown(self) -> None:
        """Cancel the running sagas and hand their leases back."""
        self._closing = True
        tasks = dict(self._tasks)
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        if not tasks:
            return
        try:
            async with unit_of_work(self._sessionmaker) as session:
                for order_id in tasks:
                    await repository.release_lease(session, order_id=order_id, owner=self.owner)
        except Exception as exc:  # the leases then simply run out
            logger.warning("saga_lease_handback_failed", error=repr(exc))
