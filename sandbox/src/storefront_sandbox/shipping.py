"""A shipping provider stand-in: create and cancel shipments, serve their labels.

The orders saga (docs/design.md §6) builds a ShipmentRequest and posts it here. The body is
strict at the top level (an unknown field is a builder bug worth a 422) and lenient
inside ``recipient``, ``parcels`` and ``items``, as carriers are: extra keys there are
kept and echoed back. ``/faults`` makes it reject (422), fail (503) or hang.

Run: ``uvicorn storefront_sandbox.shipping:create_app --factory``.
"""

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from fastapi import FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

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

__all__ = ["ShipmentRequest", "ShippingState", "create_app"]

Operation = Literal["create", "cancel"]
_EXPRESS_LEVELS = frozenset({"express", "next_day", "overnight", "priority"})


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _Lenient(BaseModel):
    # Carriers keep what they do not understand; numbers where text is expected are fine.
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


class Recipient(_Lenient):
    """Who receives the parcel and where."""

    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=320)
    line1: str = Field(min_length=1, max_length=300)
    line2: str | None = Field(default=None, max_length=300)
    city: str = Field(min_length=1, max_length=100)
    region: str | None = Field(default=None, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: str = Field(min_length=2, max_length=56, examples=["DE"])


class Parcel(_Lenient):
    """One box."""

    weight_grams: int = Field(gt=0, le=1_000_000)
    length_cm: float | None = Field(default=None, gt=0)
    width_cm: float | None = Field(default=None, gt=0)
    height_cm: float | None = Field(default=None, gt=0)


class Item(_Lenient):
    """One order line, when the sender lets the carrier pack."""

    sku: str = Field(min_length=1, max_length=128)
    qty: int = Field(default=1, ge=1, le=100_000)
    weight_grams: int | None = Field(default=None, gt=0)


class ShipmentRequest(BaseModel):
    """``POST /v1/shipments``: strict at the top level, lenient inside."""

    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(min_length=1, max_length=128)
    recipient: Recipient
    parcels: list[Parcel] | None = Field(default=None, min_length=1, max_length=50)
    items: list[Item] | None = Field(default=None, min_length=1, max_length=500)
    service_level: str | None = Field(default=None, max_length=50, examples=["standard"])
    insurance_amount: int | None = Field(default=None, ge=0, description="Minor units.")
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    signature_required: bool = False
    delivery_window: dict[str, Any] | str | None = None
    customs_lines: list[dict[str, Any]] | None = Field(default=None, max_length=500)
    notes: str | None = Field(default=None, max_length=1000)
    reference: str | None = Field(default=None, max_length=128)
    sender: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _something_to_ship(self) -> Self:
        if not self.parcels and not self.items:
            raise ValueError("either parcels or items is required")
        return self


class CancelRequest(BaseModel):
    """Optional body of a cancellation."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str | None = Field(default=None, max_length=500)


class ShippingFaults(ProviderFaultConfig):
    """``POST /faults`` body of the shipping provider ('reject' is 'decline' by its name)."""

    mode: Literal["ok", "decline", "reject", "error", "timeout"]
    operations: list[Operation] | None = None


class Shipment(BaseModel):
    """A shipment as the provider reports it; ``request`` echoes what was asked."""

    id: str
    order_id: str
    status: Literal["created", "cancelled"]
    tracking_number: str
    label_url: str
    carrier: str
    service_level: str
    weight_grams: int | None
    created_at: str
    updated_at: str
    cancelled_at: str | None = None
    cancel_reason: str | None = None
    request: dict[str, Any]


@dataclass
class ShippingState:
    """Everything the provider remembers; one instance per process."""

    shipments: dict[str, Shipment] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def get(self, shipment_id: str) -> Shipment:
        """The shipment, or the provider's 404."""
        shipment = self.shipments.get(shipment_id)
        if shipment is None:
            raise ProblemError(404, "shipment_not_found", f"No shipment {shipment_id!r}.")
        return shipment


def _total_weight(body: ShipmentRequest) -> int | None:
    if body.parcels:
        return sum(p.weight_grams for p in body.parcels)
    weights = [(i.weight_grams, i.qty) for i in body.items or []]
    if any(w is None for w, _ in weights):
        return None
    return sum((w or 0) * q for w, q in weights)


def _public_base(request: Request, settings: SandboxSettings) -> str:
    """Where clients reach this app: the gateway strips ``/sandbox/shipping`` on the way in."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    prefix = request.headers.get("x-forwarded-prefix", "").rstrip("/")
    return str(request.base_url).rstrip("/") + prefix


def label_pdf(shipment: Shipment) -> bytes:
    """A minimal one-page PDF label, so a label URL opens in a browser."""
    lines = [
        f"{shipment.carrier} - {shipment.service_level}",
        f"Tracking: {shipment.tracking_number}",
        f"Order: {shipment.order_id}",
        f"Status: {shipment.status}",
    ]
    # PDF string literals treat backslash and parentheses specially: drop them.
    unsafe = str.maketrans("", "", "\\()")
    text = " ".join(f"({line.translate(unsafe)}) Tj 0 -20 Td" for line in lines)
    stream = f"BT /F1 14 Tf 40 160 Td {text} ET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 420 200] "
        b"/Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, obj)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


IdempotencyKey = Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER)]


def create_app(settings: SandboxSettings | None = None) -> FastAPI:
    """The shipping provider app (``--factory`` entry point)."""
    settings = settings or SandboxSettings()
    state = ShippingState()
    faults = FaultInjector(default_operations=("create", "cancel"))
    idempotency = IdempotencyStore()
    app = new_app(
        title="Shipping sandbox",
        description="Stand-in shipping provider: shipments, tracking numbers and labels.",
    )

    async def fault(operation: Operation, request: Request, order_id: str) -> None:
        code, detail = (
            ("shipment_rejected", "The carrier rejected the shipment.")
            if operation == "create"
            else ("cancellation_rejected", "The carrier refused to cancel the shipment.")
        )
        decline = ProblemError(422, code, detail, extra={"order_id": order_id})
        await raise_provider_fault(
            faults, operation, request, timeout_s=settings.timeout_s, decline=decline
        )

    @app.post(
        "/v1/shipments",
        status_code=201,
        response_model=Shipment,
        responses=problem_responses(400, 422, 503, 504),
        tags=["shipments"],
    )
    async def create_shipment(
        body: ShipmentRequest, request: Request, idempotency_key: IdempotencyKey = None
    ) -> Response:
        """Create a shipment (201) with a tracking number and a label."""
        key = idempotency.require_key(idempotency_key)
        asked = body.model_dump(mode="json", exclude_none=True)

        async def action() -> tuple[int, Any]:
            await fault("create", request, body.order_id)
            shipment_id = f"shp_{uuid.uuid4().hex}"
            level = body.service_level or "standard"
            now = _now()
            shipment = Shipment(
                id=shipment_id,
                order_id=body.order_id,
                status="created",
                tracking_number=f"SBX{uuid.uuid4().int % 10**12:012d}",
                label_url=f"{_public_base(request, settings)}/labels/{shipment_id}.pdf",
                carrier="Sandbox Express" if level.lower() in _EXPRESS_LEVELS else "Sandbox Post",
                service_level=level,
                weight_grams=_total_weight(body),
                created_at=now,
                updated_at=now,
                request=asked,
            )
            async with state.lock:
                state.shipments[shipment.id] = shipment
            return 201, shipment.model_dump(mode="json")

        return await idempotency.run(key, fingerprint("POST", request.url.path, asked), action)

    @app.post(
        "/v1/shipments/{shipment_id}/cancel",
        response_model=Shipment,
        responses=problem_responses(400, 404, 422, 503, 504),
        tags=["shipments"],
    )
    async def cancel_shipment(
        shipment_id: str,
        request: Request,
        idempotency_key: IdempotencyKey = None,
        body: CancelRequest | None = None,
    ) -> Response:
        """Cancel a shipment; cancelling a cancelled one answers the same (idempotent)."""
        body = body or CancelRequest()

        async def action() -> tuple[int, Any]:
            await fault("cancel", request, state.get(shipment_id).order_id)
            async with state.lock:
                shipment = state.get(shipment_id)
                if shipment.status != "cancelled":
                    shipment.status = "cancelled"
                    shipment.cancelled_at = shipment.updated_at = _now()
                    shipment.cancel_reason = body.reason
            return 200, shipment.model_dump(mode="json")

        if idempotency_key is None:
            # Cancelling is idempotent by nature; the key is welcome, not required.
            status, result = await action()
            return JSONResponse(result, status_code=status)
        key = idempotency.require_key(idempotency_key)
        return await idempotency.run(
            key, fingerprint("POST", request.url.path, body.model_dump(mode="json")), action
        )

    @app.get(
        "/v1/shipments/{shipment_id}",
        response_model=Shipment,
        responses=problem_responses(404),
        tags=["shipments"],
    )
    async def get_shipment(shipment_id: str) -> Shipment:
        """One shipment's current state."""
        return state.get(shipment_id)

    @app.get("/labels/{shipment_id}.pdf", responses=problem_responses(404), tags=["shipments"])
    async def label(shipment_id: str) -> Response:
        """The shipment's label as a PDF."""
        return Response(label_pdf(state.get(shipment_id)), media_type="application/pdf")

    @app.get("/shipments", response_model=list[Shipment], tags=["sandbox"])
    async def list_shipments(order_id: Annotated[str | None, Query()] = None) -> list[Shipment]:
        """Every shipment, oldest first, optionally of one order (tests)."""
        return [s for s in state.shipments.values() if order_id is None or s.order_id == order_id]

    async def forget() -> None:
        async with state.lock:
            state.shipments.clear()
        idempotency.reset()

    include_fault_routes(
        app,
        faults,
        ShippingFaults,
        effect="the provider reject (422), fail (503) or hang (then 504)",
        forgets="shipments, idempotency keys",
        forget=forget,
    )

    return app
