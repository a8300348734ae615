"""Settings of the orders service (environment prefix ``ORDERS_``)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from storefront_kit.settings import DatabaseSettingsMixin, ServiceSettings

__all__ = ["OrdersSettings", "get_settings"]


class OrdersSettings(ServiceSettings, DatabaseSettingsMixin):
    """Everything the orders service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="ORDERS_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "orders"
    port: int = 8104
    database_url: str = "postgresql+asyncpg://storefront@127.0.0.1:5432/orders"


def get_settings() -> OrdersSettings:
    """Settings from the environment (and ``.env``)."""
    return OrdersSettings()
