"""The ws relay: order events from the ``orders.events`` stream to each user's channel."""

from collections.abc import Sequence
from typing import Any

from storefront_kit.events import BatchEntry, EventEnvelope
from ws_gateway_service.clients.channels import ChannelLayer, user_channel
from ws_gateway_service.events import RELAYED_TYPES

__all__ = ["OrderEventRelay"]


class OrderEventRelay:
    """Consumer-group handler: one replica relays each event; pub/sub fans it out to all.

    A read's events leave in one round trip (:meth:`handle_batch`), in stream order, so
    a user's pushes keep the order their events were published in.
    """

    def __init__(self, channels: ChannelLayer) -> None:
        self._channels = channels

    async def __call__(self, event: EventEnvelope) -> None:
        push = _push(event)
        if push is not None:
            await self._channels.publish(*push)

    async def handle_batch(self, entries: Sequence[BatchEntry]) -> Sequence[Exception | None]:
        pushes = [push for entry in entries if (push := _push(entry.event)) is not None]
        if pushes:
            await self._channels.publish_many(pushes)
        return [None] * len(entries)


def _push(event: EventEnvelope) -> tuple[str, dict[str, Any]] | None:
    """The user's channel and what their sockets get, for an event they see live."""
    user_id = event.data.get("user_id")
    if event.type not in RELAYED_TYPES or not user_id:
        return None
    message: dict[str, Any] = {
        "type": event.type,
        "event_id": str(event.id),
        "occurred_at": event.occurred_at.isoformat(),
        "data": event.data,
    }
    return user_channel(str(user_id)), message
