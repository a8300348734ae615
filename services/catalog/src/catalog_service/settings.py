"""Settings of the catalog service (environment prefix ``CATALOG_``)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from storefront_kit.settings import ServiceSettings

__all__ = ["CatalogSettings", "get_settings"]


class CatalogSettings(ServiceSettings):
    """Everything the catalog service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="CATALOG_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "catalog"
    port: int = 8102
    elasticsearch_url: str = "http://127.0.0.1:9200"
    elasticsearch_timeout_s: float = 3.0
    elasticsearch_max_retries: int = 2


def get_settings() -> CatalogSettings:
    """Settings from the environment (and ``.env``)."""
    return CatalogSettings()
