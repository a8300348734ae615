"""Settings of the ws-gateway service (environment prefix ``WS_GATEWAY_``)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from storefront_kit.settings import ServiceSettings

__all__ = ["WsGatewaySettings", "get_settings"]


class WsGatewaySettings(ServiceSettings):
    """Everything the ws-gateway service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="WS_GATEWAY_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "ws-gateway"
    port: int = 8106


def get_settings() -> WsGatewaySettings:
    """Settings from the environment (and ``.env``)."""
    return WsGatewaySettings()
