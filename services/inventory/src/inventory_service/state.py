"""What inventory's lifespan builds once and every request shares (typed; see
:mod:`storefront_kit.state`)."""

from inventory_service.settings import InventorySettings
from storefront_kit.events import OutboxRelay
from storefront_kit.state import DatabaseState

__all__ = ["InventoryState"]


class InventoryState(DatabaseState):
    """Inventory's clients: the database, Redis, and the relay of its outbox."""

    settings: InventorySettings
    outbox_relay: OutboxRelay
