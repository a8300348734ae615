"""The events auth publishes: ``user.erased`` on ``users.events`` (from its outbox).

Auth also stores the other services' audit entries, but their shape is the kit's
(:class:`storefront_kit.audit.AuditEntry`), not auth's own.
"""

from uuid import UUID

from pydantic import BaseModel, ConfigDict

__all__ = ["USERS_STREAM", "USER_ERASED", "UserErasedData"]

USERS_STREAM = "users.events"
"""The stream auth publishes user lifecycle events on (from its outbox)."""
USER_ERASED = "user.erased"


class UserErasedData(BaseModel):
    """``user.erased``: the user id only; no personal field ever travels on the stream."""

    model_config = ConfigDict(frozen=True)

    user_id: UUID
