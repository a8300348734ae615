"""An erased user's live sessions: presence dropped, sockets closed on every replica.

``user.erased`` arrives on ``users.events`` (auth's outbox), read by the
``ws-gateway-erasure`` consumer group (one replica handles each event, at least once).
It ends the user's sessions (:func:`~ws_gateway_service.service.sessions.end_user_sessions`):
``session.revoked`` on the user's channel, so every replica closes the user's sockets
(4401; their token is refused from now on anyway), and the user's members removed from
the presence set. Both are idempotent: run again, there is nothing
left to close or remove. The ws-gateway keeps no history (no "last seen").
"""

from uuid import UUID

from storefront_kit.events import EventEnvelope, PoisonMessage
from storefront_kit.logging import get_logger
from ws_gateway_service.clients.channels import ChannelLayer
from ws_gateway_service.events import USER_ERASED, USERS_STREAM
from ws_gateway_service.service.presence import Presence
from ws_gateway_service.service.sessions import end_user_sessions

__all__ = ["ERASURE_GROUP", "USERS_STREAM", "UserErasure"]

logger = get_logger(__name__)

ERASURE_GROUP = "ws-gateway-erasure"


class UserErasure:
    """The ``users.events`` handler of the ws-gateway."""

    def __init__(self, *, channels: ChannelLayer, presence: Presence) -> None:
        self._channels = channels
        self._presence = presence

    async def __call__(self, event: EventEnvelope) -> None:
        if event.type != USER_ERASED:
            return
        try:
            user_id = str(UUID(str(event.data.get("user_id"))))
        except ValueError:
            raise PoisonMessage("user.erased without a user id") from None
        dropped = await end_user_sessions(
            channels=self._channels, presence=self._presence, user_id=user_id
        )
        # Never the user id: log lines after an erasure name no erased user.
        logger.info("user_sessions_erased", presence_members=dropped, event_id=str(event.id))
