"""What a saga step is: a handler the orchestrator runs, one per :class:`Step`.

A handler knows its step's provider call (:meth:`SagaStep.perform`) and what its
outcome changes on the order (:meth:`SagaStep.apply`); a forward step also knows how
its failures read (:class:`SagaAction`). The orchestrator owns everything around them:
recording the step before and after the call, the lease, the status change, metrics.
A compensation is a handler of its own, kept in the module of the action it undoes
(one ``refund_payment`` undoes both payment actions).
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncSession

from orders_service.clients.errors import ProviderRejected
from orders_service.clients.inventory import InventoryClient
from orders_service.clients.payments import PaymentsClient
from orders_service.clients.shipping import ShippingClient
from orders_service.domain.saga import Reason, Step, StepStatus
from orders_service.repository import AnyOrder, OrderRow
from orders_service.service.fraud import FraudChecker
from orders_service.settings import OrdersSettings

__all__ = ["Alert", "SagaAction", "SagaStep", "StepContext", "StepOutcome"]

#: An admin alert to publish once the step's transaction committed: (type, data).
Alert = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class StepOutcome:
    """A step that ended well: succeeded (or had nothing to do), with what it learned."""

    status: StepStatus
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepContext:
    """What a step may call, and the settings that shape its requests."""

    inventory: InventoryClient
    payments: PaymentsClient
    shipping: ShippingClient
    settings: OrdersSettings
    fraud: FraudChecker


class SagaStep(ABC):
    """One step of the saga, an action or a compensation."""

    step: ClassVar[Step]

    def idempotency_key(self, order: AnyOrder, suffix: str | None = None) -> str:
        """The provider idempotency key of this step of ``order`` (stable across retries
        and replicas: a step run again after a crash replays the provider's answer)."""
        return f"{order.id}:{self.step.value}" + (f":{suffix}" if suffix else "")

    @abstractmethod
    async def perform(self, order: OrderRow, ctx: StepContext) -> StepOutcome:
        """Make the step's calls; a provider error propagates (the orchestrator records it).

        Runs outside any transaction, possibly again after a crash: every mutating call
        carries :meth:`idempotency_key` (or is idempotent per order at the provider).
        """

    def apply(self, session: AsyncSession, order: OrderRow, outcome: StepOutcome) -> list[Alert]:
        """Write what the step learned onto the locked ``order`` and stage the events it
        causes, in the transaction that records its outcome; the alerts to publish once
        that committed. No queries: this runs inside every step's transaction."""
        return []


class SagaAction(SagaStep):
    """A forward step: besides running, it says why the order fails when it fails."""

    def idle(self, ctx: StepContext) -> StepOutcome | None:
        """The outcome without running, when the step has nothing to do under the current
        settings (recorded in the transaction that would have started it: no transaction
        of its own); None to run it. Only for a step that leaves the status as it was."""
        return None

    #: The reason when the provider could not be reached (after the retries).
    unavailable: ClassVar[Reason]
    #: The reason when the provider's breaker refused the call (None: no breaker).
    circuit_open: ClassVar[Reason | None] = None
    #: Wait an unreachable provider out (retry later) instead of compensating.
    wait_out_unavailable: ClassVar[bool] = False

    @abstractmethod
    def rejected(self, exc: ProviderRejected) -> Reason:
        """The reason when the provider said no (a 4xx: the call had no effect)."""
