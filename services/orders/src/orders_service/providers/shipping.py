"""The shipping provider's HTTP API: create and cancel shipments (Idempotency-Key)."""

from dataclasses import dataclass
from typing import Any

import httpx

from orders_service.breakers import AsyncCircuitBreaker
from orders_service.providers.errors import ProviderRejected
from orders_service.providers.resilience import RetryPolicy, resilient_call
from orders_service.providers.shipment import ShipmentRequest

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


class ShippingClient:
    """Adapter over the provider, behind the shipping breaker."""

    def __init__(
        self, http: httpx.AsyncClient, *, policy: RetryPolicy, breaker: AsyncCircuitBreaker
    ) -> None:
        self._http = http
        self._policy = policy
        self._breaker = breaker

    async def _send(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        key: str | None = None,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        headers = {"Idempotency-Key": key} if key else {}
        response = await resilient_call(
            lambda: self._http.request(method, path, json=json, params=params, headers=headers),
            provider=PROVIDER,
            operation=operation,
            policy=self._policy,
            breaker=self._breaker,
        )
        return response.json()

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
