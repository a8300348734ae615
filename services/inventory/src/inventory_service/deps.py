"""Annotated dependency aliases: what an endpoint may ask for."""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from inventory_service.settings import InventorySettings
from inventory_service.state import InventoryState
from storefront_kit.audit import AdminAudit
from storefront_kit.db import SessionDep
from storefront_kit.paging import PageLimits, Paging, paging_dependency, settings_page_limits
from storefront_kit.security import AdminUser, StaffUser
from storefront_kit.state import service_state, state_dependency, state_part

__all__ = [
    "AdminAudit",
    "AdminUser",
    "ExportPaging",
    "ProductPaging",
    "RedisDep",
    "SessionDep",
    "SettingsDep",
    "StaffUser",
    "StateDep",
]


#: Everything inventory's lifespan built, typed (storefront_kit.state).
StateDep = Annotated[InventoryState, Depends(state_dependency(InventoryState))]
#: ``<PREFIX>_PAGE_SIZE_DEFAULT``/``_MAX`` of the service's lists.
_PAGE_LIMITS = settings_page_limits(InventoryState)


# Each reads straight from the state (here or through ``state_part``), not through
# StateDep: one dependency fewer to resolve on every reservation.
async def _export_limits(request: Request) -> PageLimits:
    # The export's pages are as large as allowed unless the caller asks for fewer.
    maximum = service_state(request, InventoryState).settings.export_limit_max
    return PageLimits(default=maximum, maximum=maximum)


SettingsDep = Annotated[
    InventorySettings, Depends(state_part(InventoryState, lambda state: state.settings))
]
RedisDep = Annotated[Redis, Depends(state_part(InventoryState, lambda state: state.redis))]
ProductPaging = Annotated[
    Paging, Depends(paging_dependency(_PAGE_LIMITS, name="size", numbered=True))
]
"""``?page=&size=`` of the admin product list (``INVENTORY_PAGE_SIZE_DEFAULT``/``_MAX``)."""
ExportPaging = Annotated[Paging, Depends(paging_dependency(_export_limits, name="limit"))]
"""``?limit=`` of the internal export (``INVENTORY_EXPORT_LIMIT_MAX``)."""
