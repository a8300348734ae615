"""What inventory's lifespan builds once and every request shares (typed; see
:mod:`storefront_kit.state`)."""

from dataclasses import dataclass

from inventory_service.settings import InventorySettings
from storefront_kit.events import OutboxRelay
from storefront_kit.state import DatabaseState

__all__ = ["InventoryState"]


@dataclass(frozen=True, kw_only=True, eq=False)
class InventoryState(DatabaseState):
    """Inventory's clients: the database, Redis, and the relay of its outbox."""

    settings: InventorySettings
    outbox_relay: OutboxRelay
