"""``/api/v1/admin/audit``: the platform's log of staff actions (admins and moderators read)."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from auth_service.deps import AuditPaging, SessionDep, StaffUser
from auth_service.errors import InvalidAuditFilter
from auth_service.schemas import AuditEntryOut, AuditPage
from auth_service.service import audit
from storefront_kit.audit import ACTION_PATTERN
from storefront_kit.problems import responses

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1/admin/audit", tags=["admin: audit"], responses=responses(401, 403)
)

_NAME = r"^[a-z][a-z0-9_-]{0,63}$"
Text = Annotated[str | None, Query(min_length=1, max_length=200)]


@router.get("", responses=responses(InvalidAuditFilter, 422))
async def list_audit(
    _staff: StaffUser,
    session: SessionDep,
    paging: AuditPaging,
    actor: Annotated[Text, Query(description="The acting staff user's id (token subject).")] = None,
    action: Annotated[
        str | None, Query(pattern=ACTION_PATTERN, max_length=64, description="e.g. order.cancelled")
    ] = None,
    target_type: Annotated[str | None, Query(pattern=_NAME, description="e.g. product")] = None,
    target_id: Text = None,
    service: Annotated[str | None, Query(pattern=_NAME, description="e.g. inventory")] = None,
    since: Annotated[datetime | None, Query(description="Inclusive, with a UTC offset.")] = None,
    until: Annotated[datetime | None, Query(description="Exclusive, with a UTC offset.")] = None,
    before: Annotated[UUID | None, Query(description="`next_before` of the previous page.")] = None,
) -> AuditPage:
    """Staff actions of every service, newest first, filtered; keyset pages (``before``)."""
    filters = audit.AuditFilter(
        actor_id=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        service=service,
        since=since,
        until=until,
    )
    rows, next_before = await audit.list_entries(
        session, filters=filters, before=before, limit=paging.size
    )
    return AuditPage(
        items=[AuditEntryOut.model_validate(row) for row in rows], next_before=next_before
    )
