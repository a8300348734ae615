"""An erased user's live sessions: closed on every replica, gone from presence."""

from ws_gateway_service.clients.channels import ChannelLayer, user_channel
from ws_gateway_service.service.hub import SESSION_REVOKED
from ws_gateway_service.service.presence import Presence

__all__ = ["end_user_sessions"]


async def end_user_sessions(*, channels: ChannelLayer, presence: Presence, user_id: str) -> int:
    """Close every socket of ``user_id`` on every replica (``session.revoked`` on the user's
    channel: 4401) and drop the user's presence members; how many members there were.

    Idempotent: run again, there is nothing left to close or remove.
    """
    await channels.publish(user_channel(user_id), {"type": SESSION_REVOKED})
    return await presence.drop_user(user_id)
