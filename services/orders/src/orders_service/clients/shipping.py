"""The shipping provider's HTTP API: create and cancel shipments (Idempotency-Key)."""

from dataclasses import dataclass
from typing import Any

from orders_service.clients.errors import ProviderRejected
from orders_service.clients.resilience import ProviderClient
from orders_service.clients.shipment import ShipmentRequest

__all__ = ["Shipment", "ShippingClient"]

PROVIDER = "shipping"


@dataclass(frozen=True)
class Shipment:
    """A shipment as the provider reports it."""

    id: str
    order_id: str
    status: str
    tracking_number: str
    label_url: str | None
    carrier: str | None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "Shipment":
        """Parse the provider's shipment object."""
        return cls(
            id=str(body["id"]),
            order_id=str(body["order_id"]),
            status=str(body["status"]),
            tracking_number=str(body["tracking_number"]),
            label_url=body.get("label_url"),
            carrier=body.get("carrier"),
        )


class ShippingClient(ProviderClient):
    """Adapter over the provider, behind the shipping breaker."""

    provider = PROVIDER

    async def create(self, request: ShipmentRequest, *, key: str) -> Shipment:
        """Book the shipment (422 → ``ProviderRejected``)."""
        return Shipment.from_json(
            await self._send("create", "POST", "/v1/shipments", key=key, json=request.to_payload())
        )

    async def cancel(self, *, shipment_id: str, key: str) -> Shipment:
        """Cancel a shipment (idempotent)."""
        return Shipment.from_json(
            await self._send(
                "cancel",
                "POST",
                f"/v1/shipments/{shipment_id}/cancel",
                key=key,
                json={"reason": "order compensation"},
            )
        )

    async def shipments_for_order(self, *, order_id: str) -> list[Shipment]:
        """Shipments booked for ``order_id``; empty when the provider cannot list them."""
        try:
            result = await self._send("list", "GET", "/shipments", params={"order_id": order_id})
        except ProviderRejected as exc:
            if exc.status in (404, 405):
                return []
            raise
        return [Shipment.from_json(item) for item in result]
