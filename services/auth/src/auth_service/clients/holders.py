"""The other services' parts of a user's data export, over their internal routes.

Each call has one short deadline (``AUTH_EXPORT_TIMEOUT_S``) and no retry: a service
that is down makes the whole export a fast 503 (``export_unavailable``, naming it),
never a partial document presented as complete. Each part is read into the model its
caller names (the export's own schemas), and an answer of another shape is refused.
"""

from typing import TypeVar
from uuid import UUID

import httpx
from pydantic import BaseModel, ValidationError

from auth_service.errors import ExportUnavailable
from storefront_kit.logging import get_logger

__all__ = ["DataHolders"]

logger = get_logger(__name__)

M = TypeVar("M", bound=BaseModel)


class DataHolders:
    """Orders, notifications and ws-gateway, asked for what they hold about one user."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        auths: dict[str, httpx.Auth],
        urls: dict[str, str],
        timeout_s: float,
    ) -> None:
        self._client = client
        self._auths = auths
        self._urls = urls
        self._timeout = timeout_s

    async def _get(self, service: str, path: str, model: type[M]) -> M:
        url = self._urls[service] + path
        try:
            response = await self._client.get(url, auth=self._auths[service], timeout=self._timeout)
        except httpx.HTTPError as exc:
            logger.warning("export_part_unavailable", service=service, error=type(exc).__name__)
            raise ExportUnavailable(
                f"The {service} service is unavailable; the export cannot be complete. "
                "Retry shortly.",
                headers={"Retry-After": "5"},
                service=service,
            ) from None
        if not response.is_success:
            logger.warning("export_part_refused", service=service, status=response.status_code)
            raise ExportUnavailable(
                f"The {service} service did not answer (HTTP {response.status_code}); "
                "the export cannot be complete. Retry shortly.",
                headers={"Retry-After": "5"},
                service=service,
            )
        try:
            return model.model_validate_json(response.content)
        except ValidationError:
            logger.error("export_part_malformed", service=service)
            raise ExportUnavailable(
                f"The {service} service answered in an unknown shape.", service=service
            ) from None

    async def orders(self, user_id: UUID, model: type[M]) -> M:
        """The user's orders, with lines, addresses, payments and shipments."""
        return await self._get("orders", f"/internal/orders/users/{user_id}/export", model)

    async def notifications(self, user_id: UUID, model: type[M]) -> M:
        """The messages sent to the user, and the chat notifications has cached."""
        return await self._get(
            "notifications", f"/internal/notifications/users/{user_id}/export", model
        )

    async def presence(self, user_id: UUID, model: type[M]) -> M:
        """Whether the user is online now."""
        return await self._get(
            "ws-gateway", f"/internal/ws-gateway/users/{user_id}/presence", model
        )
