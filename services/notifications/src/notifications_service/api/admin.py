"""``/api/v1/admin/notifications``: what the consumer gave up on, and replays (admin only)."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from notifications_service.deps import (
    AdminAudit,
    AdminUser,
    DeadLetterPaging,
    RedisDep,
    SettingsDep,
)
from notifications_service.errors import DeadLetterNotFound, InvalidRequest, ServiceUnavailable
from notifications_service.schemas import DeadLetter, DeadLetterPage, DeadLetterReplayed
from notifications_service.service.dead_letters import list_dead_letters, replay_dead_letter
from storefront_kit.problems import responses

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1/admin/notifications",
    tags=["admin: notifications"],
    responses=responses(401, 403),
)


@router.get("/dead-letters", responses=responses(InvalidRequest))
async def dead_letters(
    _admin: AdminUser,
    redis: RedisDep,
    settings: SettingsDep,
    paging: DeadLetterPaging,
    before: Annotated[str | None, Query(pattern=r"^\d{1,20}-\d{1,20}$")] = None,
) -> DeadLetterPage:
    """Dead-lettered order events of this service's consumer group, newest first."""
    items, next_before = await list_dead_letters(
        redis,
        stream=f"{settings.consumer_stream}.dead",
        group=settings.consumer_group,
        limit=paging.size,
        before=before,
    )
    return DeadLetterPage(
        items=[DeadLetter.model_validate(item) for item in items], next_before=next_before
    )


@router.post(
    "/dead-letters/{entry_id}/replay",
    responses=responses(DeadLetterNotFound, InvalidRequest, ServiceUnavailable, 422),
)
async def replay(
    entry_id: Annotated[str, Path(pattern=r"^\d{1,20}-\d{1,20}$")],
    audit: AdminAudit,
    redis: RedisDep,
    settings: SettingsDep,
) -> DeadLetterReplayed:
    """Put a dead-lettered event back on the consumer's stream (audited, at most once)."""
    item = await replay_dead_letter(
        redis,
        stream=settings.consumer_stream,
        dead_stream=f"{settings.consumer_stream}.dead",
        group=settings.consumer_group,
        entry_id=entry_id,
        audit=audit,
    )
    return DeadLetterReplayed.model_validate(item)
