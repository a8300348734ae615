"""Settings of the ws-gateway service (environment prefix ``WS_GATEWAY_``)."""

import os
import socket
import uuid
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from storefront_kit.settings import ServiceSettings

__all__ = ["WsGatewaySettings", "get_settings"]


def _instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class WsGatewaySettings(ServiceSettings):
    """Everything the ws-gateway service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="WS_GATEWAY_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "ws-gateway"
    port: int = 8106
    instance_id: str = Field(
        default_factory=_instance_id,
        description="Identifies this replica in presence keys and consumer names.",
    )
    gc_freeze_interval_s: float = Field(
        default=10.0,
        ge=0,
        description=(
            "How often the live objects (the sockets') are frozen out of the cyclic garbage"
            " collector's walks (workers/gc_freeze.py); 0: never."
        ),
    )
    gc_thaw_interval_s: float = Field(
        default=900.0,
        ge=0,
        description=(
            "How often the frozen objects go back to the collector, so that reference"
            " cycles left by closed sockets are freed (one full collection each time); 0: never."
        ),
    )
    heartbeat_interval_s: float = Field(
        default=20.0, description="How often the server sends a ping message to each socket."
    )
    idle_timeout_s: float = Field(
        default=60.0, description="A socket that sends nothing for this long is closed."
    )
    send_queue_size: int = Field(
        default=256,
        description="Messages buffered per socket; a client that falls further behind is dropped.",
    )
    presence_ttl_s: float = Field(
        default=30.0,
        description="A connection counts as online this long after its last refresh.",
    )
    relay_enabled: bool = Field(
        default=True, description="Relay orders.events to user channels from this replica."
    )
    orders_stream: str = Field(default="orders.events", description="Stream of order events.")
    erasure_consumer_enabled: bool = Field(
        default=True,
        description=(
            "Consume users.events (group ws-gateway-erasure) from this replica: an erased"
            " user's presence is dropped and their sockets closed on every replica."
        ),
    )
    relay_claim_idle_ms: int = Field(
        default=30_000,
        ge=100,
        description="Order events a dead replica left unacknowledged this long are taken over.",
    )
    relay_linger_ms: int = Field(
        default=30,
        ge=0,
        le=1000,
        description=(
            "Milliseconds the relay waits after a read that found order events before"
            " reading again, so a checkout's burst costs one read and one acknowledgement;"
            " a live push may leave up to this much later (0: read again at once)."
        ),
    )
    relay_dead_consumer_idle_ms: int = Field(
        default=600_000,
        ge=2000,
        description=(
            "A relay consumer (a dead replica's) that has not read for this long is removed"
            " from the group once nothing is pending for it."
        ),
    )


def get_settings() -> WsGatewaySettings:
    """Settings from the environment (and ``.env``)."""
    return WsGatewaySettings()
