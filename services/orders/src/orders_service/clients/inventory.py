"""The inventory service's internal API: reserve, release, commit (service tokens)."""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import aiohttp

from orders_service.clients.errors import ProviderRejected
from orders_service.clients.resilience import RetryPolicy, resilient_call, send

__all__ = ["InventoryClient", "Reservation"]

PROVIDER = "inventory"


@dataclass(frozen=True)
class Reservation:
    """A hold priced by inventory: ``lines`` are ``{sku, qty, unit_price, currency, name}``."""

    status: str
    lines: list[dict[str, Any]]
    total: int
    currency: str

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "Reservation":
        """Parse ``ReservationOut``."""
        return cls(
            status=str(body["status"]),
            lines=[
                {
                    "sku": str(line["sku"]),
                    "qty": int(line["qty"]),
                    "unit_price": int(line["unit_price"]),
                    "currency": str(line["currency"]),
                    "name": str(line["name"]),
                }
                for line in body["lines"]
            ],
            total=int(body["total"]),
            currency=str(body["currency"]),
        )


class InventoryClient:
    """Adapter over ``/internal/inventory``; every call is idempotent per order id."""

    def __init__(self, http: aiohttp.ClientSession, *, base_url: str, policy: RetryPolicy) -> None:
        self._http = http
        self._url = f"{base_url.rstrip('/')}/internal/inventory/"
        self._policy = policy

    async def _post(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self._url + operation
        response = await resilient_call(
            lambda: send(self._http, "POST", url, json=body),
            provider=PROVIDER,
            operation=operation,
            policy=self._policy,
        )
        result: dict[str, Any] = response.json()
        return result

    async def reserve(
        self, *, order_id: UUID, items: list[dict[str, Any]], ttl_s: int
    ) -> Reservation:
        """Hold every line or none; raises :class:`ProviderRejected` when it cannot."""
        body = {"order_id": str(order_id), "items": items, "ttl_s": ttl_s}
        return Reservation.from_json(await self._post("reserve", body))

    async def release(self, *, order_id: UUID) -> str | None:
        """Give the stock back; ``None`` when inventory never held any for this order."""
        try:
            result = await self._post("release", {"order_id": str(order_id)})
        except ProviderRejected as exc:
            if exc.status == 404:
                return None
            raise
        return str(result["status"])

    async def commit(self, *, order_id: UUID) -> str:
        """Turn the hold into a sale."""
        result = await self._post("commit", {"order_id": str(order_id)})
        return str(result["status"])

    async def restock(self, *, order_id: UUID) -> str:
        """Put a committed sale's units back on hand (the order was cancelled)."""
        result = await self._post("restock", {"order_id": str(order_id)})
        return str(result["status"])
