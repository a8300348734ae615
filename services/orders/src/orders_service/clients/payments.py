"""The payment provider's HTTP API: authorize, capture, refund, void (Idempotency-Key)."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orders_service.clients.resilience import ProviderClient

__all__ = ["Payment", "PaymentsClient"]

PROVIDER = "payments"


@dataclass(frozen=True)
class Payment:
    """A payment as the provider reports it."""

    id: str
    order_id: str
    status: str
    amount: int
    currency: str
    captured_amount: int
    refunded_amount: int

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "Payment":
        """Parse the provider's payment object."""
        return cls(
            id=str(body["id"]),
            order_id=str(body["order_id"]),
            status=str(body["status"]),
            amount=int(body["amount"]),
            currency=str(body["currency"]),
            captured_amount=int(body.get("captured_amount") or 0),
            refunded_amount=int(body.get("refunded_amount") or 0),
        )


class PaymentsClient(ProviderClient):
    """Adapter over the provider; every mutating call carries the caller's idempotency key."""

    provider = PROVIDER

    async def authorize(
        self,
        *,
        order_id: str,
        amount: int,
        currency: str,
        payment_method: Mapping[str, Any],
        key: str,
    ) -> Payment:
        """Reserve ``amount`` on the customer's card (402 decline → ``ProviderRejected``).

        ``payment_method`` is the checkout's ``payment`` object as the order stores it.
        """
        body = {
            "order_id": order_id,
            "amount": amount,
            "currency": currency,
            "method": {
                "type": payment_method.get("method", "card"),
                "token": payment_method.get("token"),
            },
        }
        return Payment.from_json(
            await self._send("authorize", "POST", "/v1/payments/authorize", key=key, json=body)
        )

    async def capture(self, *, payment_id: str, key: str) -> Payment:
        """Take the authorized money (capturing twice changes nothing)."""
        return Payment.from_json(
            await self._send("capture", "POST", f"/v1/payments/{payment_id}/capture", key=key)
        )

    async def refund(self, *, payment_id: str, key: str, reason: str | None = None) -> Payment:
        """Give all captured money back."""
        body = {"reason": reason} if reason else None
        return Payment.from_json(
            await self._send(
                "refund", "POST", f"/v1/payments/{payment_id}/refund", key=key, json=body
            )
        )

    async def void(self, *, payment_id: str, key: str) -> Payment:
        """Release an uncaptured authorization."""
        return Payment.from_json(
            await self._send("void", "POST", f"/v1/payments/{payment_id}/void", key=key)
        )

    async def payments_for_order(self, *, order_id: str) -> list[Payment]:
        """Every payment the provider holds for ``order_id`` (compensation looks here)."""
        result = await self._send("list", "GET", "/v1/payments", params={"order_id": order_id})
        return [Payment.from_json(item) for item in result]
