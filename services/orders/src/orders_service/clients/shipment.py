"""``ShipmentRequest`` and its builder: many optional fields, required ones checked at ``build()``.

The builder keeps :func:`build_shipment_request` (an order's parcel) readable, with
``with_`` calls for what an order has, while the frozen request stays valid by
construction.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, Self
from uuid import UUID

__all__ = [
    "Address",
    "CustomsLine",
    "DeliveryWindow",
    "Parcel",
    "ShipmentRequest",
    "ShipmentRequestBuilder",
    "ShipmentRequestError",
    "ShippedOrder",
    "build_shipment_request",
]

ServiceLevel = Literal["standard", "express"]


class ShipmentRequestError(ValueError):
    """The builder was asked to build an incomplete or inconsistent request."""


@dataclass(frozen=True)
class Address:
    """A postal address."""

    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class Parcel:
    """One box."""

    weight_grams: int
    length_mm: int | None = None
    width_mm: int | None = None
    height_mm: int | None = None


@dataclass(frozen=True)
class DeliveryWindow:
    """When the recipient can receive the parcel."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class CustomsLine:
    """One declared item for cross-border shipments."""

    description: str
    quantity: int
    value_amount: int
    currency: str
    hs_code: str | None = None
    origin_country: str | None = None


@dataclass(frozen=True)
class ShipmentRequest:
    """Everything the shipping provider needs to create a shipment."""

    order_id: str
    recipient_name: str
    address: Address
    parcels: tuple[Parcel, ...]
    service_level: ServiceLevel = "standard"
    recipient_phone: str | None = None
    insurance_amount: int | None = None
    currency: str | None = None
    signature_required: bool = False
    delivery_window: DeliveryWindow | None = None
    customs_lines: tuple[CustomsLine, ...] = ()
    notes: str | None = None

    def to_payload(self) -> dict[str, Any]:
        """The provider's JSON body."""
        payload: dict[str, Any] = {
            "order_id": self.order_id,
            # Carriers take the address flat inside the recipient (the provider's schema).
            "recipient": {
                "name": self.recipient_name,
                **{k: v for k, v in self.address.__dict__.items() if v is not None},
            },
            "parcels": [
                {k: v for k, v in p.__dict__.items() if v is not None} for p in self.parcels
            ],
            "service_level": self.service_level,
            "signature_required": self.signature_required,
        }
        if self.recipient_phone:
            payload["recipient"]["phone"] = self.recipient_phone
        if self.insurance_amount is not None:
            payload["insurance_amount"] = self.insurance_amount
            payload["currency"] = self.currency
        if self.delivery_window is not None:
            payload["delivery_window"] = {
                "start": self.delivery_window.start.isoformat(),
                "end": self.delivery_window.end.isoformat(),
            }
        if self.customs_lines:
            payload["customs_lines"] = [
                {k: v for k, v in c.__dict__.items() if v is not None} for c in self.customs_lines
            ]
        if self.notes:
            payload["notes"] = self.notes
        return payload


@dataclass
class ShipmentRequestBuilder:
    """Collects a shipment's fields step by step; :meth:`build` validates them."""

    _order_id: str | None = None
    _recipient_name: str | None = None
    _recipient_phone: str | None = None
    _address: Address | None = None
    _parcels: list[Parcel] = field(default_factory=list)
    _service_level: ServiceLevel = "standard"
    _insurance: tuple[int, str] | None = None
    _signature_required: bool = False
    _delivery_window: DeliveryWindow | None = None
    _customs_lines: list[CustomsLine] = field(default_factory=list)
    _notes: str | None = None

    def for_order(self, order_id: str) -> Self:
        """The order this shipment fulfils (required)."""
        self._order_id = order_id
        return self

    def to(self, name: str, address: Address, *, phone: str | None = None) -> Self:
        """The recipient (required)."""
        self._recipient_name, self._address, self._recipient_phone = name, address, phone
        return self

    def with_parcel(self, parcel: Parcel) -> Self:
        """Add a parcel (at least one is required)."""
        self._parcels.append(parcel)
        return self

    def with_service_level(self, level: ServiceLevel) -> Self:
        """Standard or express."""
        self._service_level = level
        return self

    def with_insurance(self, amount: int, currency: str) -> Self:
        """Insure the shipment for ``amount`` minor units."""
        self._insurance = (amount, currency)
        return self

    def with_signature(self, required: bool = True) -> Self:
        """Ask for a signature on delivery."""
        self._signature_required = required
        return self

    def with_delivery_window(self, start: datetime, end: datetime) -> Self:
        """Deliver only between ``start`` and ``end``."""
        self._delivery_window = DeliveryWindow(start, end)
        return self

    def with_customs_line(self, line: CustomsLine) -> Self:
        """Declare an item for customs."""
        self._customs_lines.append(line)
        return self

    def with_notes(self, notes: str) -> Self:
        """Free text for the courier."""
        self._notes = notes
        return self

    def build(self) -> ShipmentRequest:
        """The validated request; raises :class:`ShipmentRequestError` naming what is wrong."""
        missing = [
            name
            for name, value in (
                ("order_id", self._order_id),
                ("recipient", self._recipient_name),
                ("address", self._address),
            )
            if not value
        ]
        if not self._parcels:
            missing.append("parcels")
        if missing:
            raise ShipmentRequestError(f"missing required fields: {', '.join(missing)}")
        assert self._order_id
        assert self._recipient_name
        assert self._address
        problems = []
        if any(p.weight_grams <= 0 for p in self._parcels):
            problems.append("parcel weight must be positive")
        if self._insurance is not None and self._insurance[0] <= 0:
            problems.append("insurance amount must be positive")
        window = self._delivery_window
        if window is not None and window.end <= window.start:
            problems.append("delivery window must end after it starts")
        if any(c.quantity <= 0 or c.value_amount < 0 for c in self._customs_lines):
            problems.append("customs lines need a positive quantity and a value")
        if self._notes is not None and len(self._notes) > 500:
            problems.append("notes are limited to 500 characters")
        if problems:
            raise ShipmentRequestError("; ".join(problems))
        return ShipmentRequest(
            order_id=self._order_id,
            recipient_name=self._recipient_name,
            recipient_phone=self._recipient_phone,
            address=self._address,
            parcels=tuple(self._parcels),
            service_level=self._service_level,
            insurance_amount=self._insurance[0] if self._insurance else None,
            currency=self._insurance[1] if self._insurance else None,
            signature_required=self._signature_required,
            delivery_window=window,
            customs_lines=tuple(self._customs_lines),
            notes=self._notes,
        )


class ShippedOrder(Protocol):
    """What a parcel is built from: a mapped order or the saga's plain row."""

    @property
    def id(self) -> UUID: ...
    @property
    def shipping_address(self) -> dict[str, Any]: ...
    @property
    def lines(self) -> list[dict[str, Any]]: ...
    @property
    def total(self) -> int | None: ...
    @property
    def currency(self) -> str | None: ...


def build_shipment_request(order: ShippedOrder, *, item_weight_grams: int) -> ShipmentRequest:
    """The provider request for an order, through the builder (validated at ``build``)."""
    address = order.shipping_address
    units = sum(int(line["qty"]) for line in order.lines) or 1
    builder = (
        ShipmentRequestBuilder()
        .for_order(str(order.id))
        .to(
            address.get("name", ""),
            Address(
                line1=address.get("line1", ""),
                line2=address.get("line2"),
                city=address.get("city", ""),
                region=address.get("region"),
                postal_code=address.get("postal_code", ""),
                country=address.get("country", ""),
            ),
            phone=address.get("phone"),
        )
        .with_parcel(Parcel(weight_grams=units * item_weight_grams))
    )
    if order.total and order.currency:
        builder.with_insurance(order.total, order.currency)
    if address.get("notes"):
        builder.with_notes(str(address["notes"]))
    return builder.build()
