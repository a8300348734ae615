"""Settings of the auth service (environment prefix ``AUTH_``)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from storefront_kit.settings import DatabaseSettingsMixin, ServiceSettings

__all__ = ["AuthSettings", "get_settings"]


class AuthSettings(ServiceSettings, DatabaseSettingsMixin):
    """Everything the auth service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="AUTH_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "auth"
    port: int = 8101
    database_url: str = "postgresql+asyncpg://storefront@127.0.0.1:5432/auth"


def get_settings() -> AuthSettings:
    """Settings from the environment (and ``.env``)."""
    return AuthSettings()
