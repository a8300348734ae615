"""A payment provider stand-in: authorize, capture, refund, void, with a ledger.

The orders saga (docs/design.md §6) talks to it as to a real card processor: amounts are
integer minor units with a currency, every mutating call carries an
``Idempotency-Key``, declines are 402 problems, and ``/faults`` makes it decline,
fail or hang on demand. ``/ledger`` lets a test prove money moved exactly once.

Run: ``uvicorn storefront_sandbox.payments:create_app --factory``.
"""

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from storefront_sandbox.faults import (
    FaultInjector,
    ProviderFaultConfig,
    include_fault_routes,
    raise_provider_fault,
)
from storefront_sandbox.idempotency import IDEMPOTENCY_HEADER, IdempotencyStore, fingerprint
from storefront_sandbox.problems import ProblemError, problem_responses
from storefront_sandbox.settings import SandboxSettings
from storefront_sandbox.web import new_app

__all__ = ["PaymentsState", "create_app"]

Operation = Literal["authorize", "capture", "refund", "void"]
PaymentStatus = Literal["authorized", "captured", "partially_refunded", "refunded", "voided"]
LedgerKind = Literal["authorization", "capture", "refund", "void"]

_MAX_AMOUNT = 10**12


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AuthorizeRequest(_Strict):
    """Reserve ``amount`` on the customer's payment method for one order."""

    order_id: str = Field(min_length=1, max_length=128, examples=["0190c5f2-7b7e-7c1e-9d1a"])
    amount: int = Field(gt=0, le=_MAX_AMOUNT, description="Minor units (cents).", examples=[4999])
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])
    method: dict[str, Any] | None = Field(
        default=None, description="Opaque payment method details.", examples=[{"type": "card"}]
    )


class CaptureRequest(_Strict):
    """Take the authorized money; ``amount`` defaults to all of it."""

    amount: int | None = Field(default=None, gt=0, le=_MAX_AMOUNT)


class RefundRequest(_Strict):
    """Give captured money back; ``amount`` defaults to everything not yet refunded."""

    amount: int | None = Field(default=None, gt=0, le=_MAX_AMOUNT)
    reason: str | None = Field(default=None, max_length=500)


class PaymentFaults(ProviderFaultConfig):
    """``POST /faults`` body of the payment provider."""

    mode: Literal["ok", "decline", "error", "timeout"]
    operations: list[Operation] | None = None


class Payment(BaseModel):
    """A payment as the provider reports it."""

    id: str
    order_id: str
    status: PaymentStatus
    amount: int
    currency: str
    captured_amount: int = 0
    refunded_amount: int = 0
    method: dict[str, Any] | None = None
    created_at: str
    updated_at: str


class LedgerEntry(BaseModel):
    """One movement of money, appended once per effective operation."""

    seq: int
    kind: LedgerKind
    payment_id: str
    order_id: str
    amount: int
    currency: str
    idempotency_key: str
    at: str


class Ledger(BaseModel):
    """``GET /ledger``."""

    entries: list[LedgerEntry]


@dataclass
class PaymentsState:
    """Everything the provider remembers; one instance per process."""

    payments: dict[str, Payment] = field(default_factory=dict)
    ledger: list[LedgerEntry] = field(default_factory=list)
    last_seq: int = 0
    # Check-then-write sections take this lock so no await can split them.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def record(self, kind: LedgerKind, payment: Payment, amount: int, key: str) -> None:
        """Append a ledger entry."""
        self.last_seq += 1
        self.ledger.append(
            LedgerEntry(
                seq=self.last_seq,
                kind=kind,
                payment_id=payment.id,
                order_id=payment.order_id,
                amount=amount,
                currency=payment.currency,
                idempotency_key=key,
                at=_now(),
            )
        )

    def get(self, payment_id: str) -> Payment:
        """The payment, or the provider's 404."""
        payment = self.payments.get(payment_id)
        if payment is None:
            raise ProblemError(404, "payment_not_found", f"No payment {payment_id!r}.")
        return payment


IdempotencyKey = Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER)]
_MUTATION_ERRORS = problem_responses(400, 402, 404, 409, 422, 503, 504)


def create_app(settings: SandboxSettings | None = None) -> FastAPI:
    """The payment provider app (``--factory`` entry point)."""
    settings = settings or SandboxSettings()
    state = PaymentsState()
    faults = FaultInjector(default_operations=("authorize", "capture", "refund", "void"))
    idempotency = IdempotencyStore()
    app = new_app(
        title="Payments sandbox",
        description="Stand-in payment provider: authorize, capture, refund, with a ledger.",
    )

    async def fault(operation: Operation, request: Request, order_id: str) -> None:
        decline = ProblemError(
            402,
            "payment_declined",
            "The payment method was declined.",
            extra={"decline_code": "card_declined", "order_id": order_id},
        )
        await raise_provider_fault(
            faults, operation, request, timeout_s=settings.timeout_s, decline=decline
        )

    @app.post(
        "/v1/payments/authorize",
        status_code=201,
        response_model=Payment,
        responses=_MUTATION_ERRORS,
        tags=["payments"],
    )
    async def authorize(
        body: AuthorizeRequest, request: Request, idempotency_key: IdempotencyKey = None
    ) -> Response:
        """Authorize an amount for an order (201); replays for a repeated key."""
        key = idempotency.require_key(idempotency_key)

        async def action() -> tuple[int, Any]:
            await fault("authorize", request, body.order_id)
            async with state.lock:
                now = _now()
                payment = Payment(
                    id=f"pay_{uuid.uuid4().hex}",
                    order_id=body.order_id,
                    status="authorized",
                    amount=body.amount,
                    currency=body.currency,
                    method=body.method,
                    created_at=now,
                    updated_at=now,
                )
                state.payments[payment.id] = payment
                state.record("authorization", payment, payment.amount, key)
            return 201, payment.model_dump(mode="json")

        return await idempotency.run(
            key, fingerprint("POST", request.url.path, body.model_dump(mode="json")), action
        )

    async def change_payment(
        operation: Operation,
        payment_id: str,
        request: Request,
        idempotency_key: str | None,
        body: dict[str, Any],
        change: Callable[[Payment, str], None],
    ) -> Response:
        """``change(payment, key)`` under the lock, after the operation's fault (if one is
        injected), once per idempotency key; the payment as it then is (200)."""
        key = idempotency.require_key(idempotency_key)

        async def action() -> tuple[int, Any]:
            await fault(operation, request, state.get(payment_id).order_id)
            async with state.lock:
                payment = state.get(payment_id)
                change(payment, key)
            return 200, payment.model_dump(mode="json")

        return await idempotency.run(key, fingerprint("POST", request.url.path, body), action)

    @app.post(
        "/v1/payments/{payment_id}/capture",
        response_model=Payment,
        responses=_MUTATION_ERRORS,
        tags=["payments"],
    )
    async def capture(
        payment_id: str,
        request: Request,
        idempotency_key: IdempotencyKey = None,
        body: CaptureRequest | None = None,
    ) -> Response:
        """Capture an authorization; capturing a captured payment changes nothing."""
        asked = body or CaptureRequest()

        def apply(payment: Payment, key: str) -> None:
            if payment.status == "voided":
                raise ProblemError(409, "payment_voided", "A voided payment cannot be captured.")
            if payment.status == "authorized":
                amount = asked.amount or payment.amount
                if amount > payment.amount:
                    raise ProblemError(
                        409,
                        "capture_exceeds_authorization",
                        f"Cannot capture {amount}: only {payment.amount} is authorized.",
                    )
                payment.status = "captured"
                payment.captured_amount = amount
                payment.updated_at = _now()
                state.record("capture", payment, amount, key)

        return await change_payment(
            "capture", payment_id, request, idempotency_key, asked.model_dump(mode="json"), apply
        )

    @app.post(
        "/v1/payments/{payment_id}/refund",
        response_model=Payment,
        responses=_MUTATION_ERRORS,
        tags=["payments"],
    )
    async def refund(
        payment_id: str,
        request: Request,
        idempotency_key: IdempotencyKey = None,
        body: RefundRequest | None = None,
    ) -> Response:
        """Refund captured money (all of what is left by default); 409 before capture."""
        asked = body or RefundRequest()

        def apply(payment: Payment, key: str) -> None:
            if payment.status in ("authorized", "voided"):
                raise ProblemError(
                    409,
                    "payment_not_captured",
                    f"Payment is {payment.status}: only captured money can be refunded.",
                    extra={"payment_status": payment.status},
                )
            left = payment.captured_amount - payment.refunded_amount
            if asked.amount is None and left == 0:
                # A full refund asked again (say, a retried compensation): already done.
                return
            amount = asked.amount or left
            if amount > left:
                raise ProblemError(
                    409,
                    "refund_exceeds_captured",
                    f"Cannot refund {amount}: only {left} is left to refund.",
                )
            payment.refunded_amount += amount
            payment.status = (
                "refunded"
                if payment.refunded_amount == payment.captured_amount
                else "partially_refunded"
            )
            payment.updated_at = _now()
            state.record("refund", payment, amount, key)

        return await change_payment(
            "refund", payment_id, request, idempotency_key, asked.model_dump(mode="json"), apply
        )

    @app.post(
        "/v1/payments/{payment_id}/void",
        response_model=Payment,
        responses=_MUTATION_ERRORS,
        tags=["payments"],
    )
    async def void(
        payment_id: str, request: Request, idempotency_key: IdempotencyKey = None
    ) -> Response:
        """Release an uncaptured authorization (the compensation before capture)."""

        def apply(payment: Payment, key: str) -> None:
            if payment.status == "authorized":
                payment.status = "voided"
                payment.updated_at = _now()
                state.record("void", payment, payment.amount, key)
            elif payment.status != "voided":
                raise ProblemError(
                    409,
                    "payment_already_captured",
                    "A captured payment is refunded, not voided.",
                    extra={"payment_status": payment.status},
                )

        return await change_payment("void", payment_id, request, idempotency_key, {}, apply)

    @app.get(
        "/v1/payments/{payment_id}",
        response_model=Payment,
        responses=problem_responses(404),
        tags=["payments"],
    )
    async def get_payment(payment_id: str) -> Payment:
        """One payment's current state."""
        return state.get(payment_id)

    @app.get("/v1/payments", response_model=list[Payment], tags=["payments"])
    async def list_payments(order_id: Annotated[str | None, Query()] = None) -> list[Payment]:
        """Payments, oldest first, optionally of one order."""
        return [p for p in state.payments.values() if order_id is None or p.order_id == order_id]

    @app.get("/ledger", response_model=Ledger, tags=["sandbox"])
    async def ledger(order_id: Annotated[str | None, Query()] = None) -> Ledger:
        """Every authorization, capture, refund and void, in order."""
        return Ledger(
            entries=[e for e in state.ledger if order_id is None or e.order_id == order_id]
        )

    async def forget() -> None:
        async with state.lock:
            state.payments.clear()
            state.ledger.clear()
            state.last_seq = 0
        idempotency.reset()

    include_fault_routes(
        app,
        faults,
        PaymentFaults,
        effect="the provider decline, fail (503) or hang (then 504)",
        forgets="payments, ledger, idempotency keys",
        forget=forget,
    )

    return app
