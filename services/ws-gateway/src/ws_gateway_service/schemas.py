"""Response models of the ws-gateway service."""

from pydantic import BaseModel, Field

__all__ = ["OnlineUsers", "UserPresence"]


class OnlineUsers(BaseModel):
    """Users with at least one live socket on any replica."""

    count: int = Field(examples=[2])
    user_ids: list[str] = Field(examples=[["0190f1b2-7c1e-7e4a-9d55-3c1d0c9b2a11"]])


class UserPresence(BaseModel):
    """Whether one user is online now (a data export; no history is kept)."""

    online: bool
    connections: int = Field(description="Unexpired sockets of the user on every replica.")
