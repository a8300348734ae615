"""Settings of the inventory service (environment prefix ``INVENTORY_``)."""

from typing import ClassVar

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from storefront_kit.settings import DatabaseSettingsMixin, OutboxSettingsMixin, ServiceSettings

__all__ = ["InventorySettings", "get_settings"]


class InventorySettings(ServiceSettings, DatabaseSettingsMixin, OutboxSettingsMixin):
    """Everything the inventory service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="INVENTORY_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "inventory"
    port: int = 8103
    database_url: str = "postgresql+asyncpg://storefront@127.0.0.1:5432/inventory"

    #: Reservation hold when the caller sends no ``ttl_s``.
    reservation_default_ttl_s: int = Field(default=900, ge=1)
    #: Longest hold a caller may ask for (a larger ``ttl_s`` is a 422).
    reservation_max_ttl_s: int = Field(default=3600, ge=1)
    #: Most lines (distinct skus) one reservation may hold.
    reservation_max_lines: int = Field(default=100, ge=1, le=1000)
    #: Seconds between two sweeps for expired reservations.
    sweeper_interval_s: float = Field(default=1.0, gt=0)
    #: Expired reservations released per sweeper transaction.
    sweeper_batch_size: int = Field(default=100, ge=1, le=10_000)
    #: Run the expiry sweeper and the outbox relay in this process.
    background_tasks_enabled: bool = True
    #: The relay's wait after a commit woke it: 25 ms (the kit's 10) batches a
    #: checkout's reserve and commit events in fewer relay rounds (docs/benchmarks.md).
    outbox_notify_linger_s: float = Field(default=0.025, ge=0, le=1)
    #: Admin product list page size when none is asked for.
    page_size_default: int = Field(default=20, ge=1)
    #: Largest admin list page size (larger is a 422).
    page_size_max: int = Field(default=100, ge=1)
    #: Largest ``limit`` of the internal export (larger is a 422).
    export_limit_max: int = Field(default=1000, ge=1)

    @model_validator(mode="after")
    def _coherent_limits(self) -> "InventorySettings":
        if self.reservation_default_ttl_s > self.reservation_max_ttl_s:
            raise ValueError("reservation_default_ttl_s exceeds reservation_max_ttl_s")
        if self.page_size_default > self.page_size_max:
            raise ValueError("page_size_default exceeds page_size_max")
        return self


def get_settings() -> InventorySettings:
    """Settings from the environment (and ``.env``)."""
    return InventorySettings()
