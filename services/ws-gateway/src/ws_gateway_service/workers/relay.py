"""The ws relay: order events from the ``orders.events`` stream to each user's channel."""

from typing import Any

from storefront_kit.events import EventEnvelope
from ws_gateway_service.clients.channels import ChannelLayer, user_channel
from ws_gateway_service.events import RELAYED_TYPES

__all__ = ["OrderEventRelay"]


class OrderEventRelay:
    """Consumer-group handler: one replica relays each event; pub/sub fans it out to all."""

    def __init__(self, channels: ChannelLayer) -> None:
        self._channels = channels

    async def __call__(self, event: EventEnvelope) -> None:
        user_id = event.data.get("user_id")
        if event.type not in RELAYED_TYPES or not user_id:
            return
        message: dict[str, Any] = {
            "type": event.type,
            "event_id": str(event.id),
            "occurred_at": event.occurred_at.isoformat(),
            "data": event.data,
        }
        await self._channels.publish(user_channel(str(user_id)), message)
