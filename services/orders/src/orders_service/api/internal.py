"""``/internal/orders/...``: service-to-service only (auth's data export)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends

from jwt_core_lib import TokenClaims
from orders_service.deps import ShardsDep
from orders_service.schemas import ExportedOrders
from orders_service.service import privacy
from storefront_kit.db import unit_of_work
from storefront_kit.problems import responses
from storefront_kit.security import allow_callers

__all__ = ["router"]

router = APIRouter(prefix="/internal/orders", tags=["internal"], responses=responses(401, 403))

Auth = Annotated[TokenClaims, Depends(allow_callers("auth"))]


@router.get("/users/{user_id}/export", responses=responses(422))
async def export_user(user_id: UUID, _caller: Auth, shards: ShardsDep) -> ExportedOrders:
    """Every order of the user, with addresses, payments, shipments and saga steps."""
    async with unit_of_work(shards.for_user(str(user_id)).sessionmaker) as session:
        return await privacy.export_orders(session, user_id)
