"""Response models of the ws-gateway service."""

from pydantic import BaseModel, Field

__all__ = ["OnlineUsers"]


class OnlineUsers(BaseModel):
    """Users with at least one live socket on any replica."""

    count: int = Field(examples=[2])
    user_ids: list[str] = Field(examples=[["0190f1b2-7c1e-7e4a-9d55-3c1d0c9b2a11"]])
