"""Settings of the inventory service (environment prefix ``INVENTORY_``)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from storefront_kit.settings import DatabaseSettingsMixin, ServiceSettings

__all__ = ["InventorySettings", "get_settings"]


class InventorySettings(ServiceSettings, DatabaseSettingsMixin):
    """Everything the inventory service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="INVENTORY_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "inventory"
    port: int = 8103
    database_url: str = "postgresql+asyncpg://storefront@127.0.0.1:5432/inventory"


def get_settings() -> InventorySettings:
    """Settings from the environment (and ``.env``)."""
    return InventorySettings()
