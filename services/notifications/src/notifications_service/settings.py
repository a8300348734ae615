"""Settings of the notifications service (environment prefix ``NOTIFICATIONS_``)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from storefront_kit.settings import DatabaseSettingsMixin, ServiceSettings

__all__ = ["NotificationsSettings", "get_settings"]


class NotificationsSettings(ServiceSettings, DatabaseSettingsMixin):
    """Everything the notifications service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "notifications"
    port: int = 8105
    database_url: str = "postgresql+asyncpg://storefront@127.0.0.1:5432/notifications"


def get_settings() -> NotificationsSettings:
    """Settings from the environment (and ``.env``)."""
    return NotificationsSettings()
