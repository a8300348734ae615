"""Every query of the notifications service (callers own the transaction).

Chat ids are stored encrypted: rows are found through the chat's blind index.
:func:`claim` and :func:`finish` are single Core statements that take a session or a
bare connection: the order consumer runs each on a pooled connection of its own, with
no ORM session around it (issue 17).
"""

import enum
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BindParameter,
    Interval,
    Table,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from notifications_service.fields import chat_index
from notifications_service.models import NotificationLog, NotificationStatus
from storefront_kit.ids import new_id

__all__ = ["Claim", "claim", "delete_user_log", "finish", "get_log", "user_log"]

_TABLE: Table = NotificationLog.__table__  # type: ignore[assignment]


class Claim(enum.Enum):
    """What :func:`claim` found."""

    CLAIMED = "claimed"  # this consumer may send it now
    DONE = "done"  # sent (or undeliverable) already: send nothing
    BUSY = "busy"  # another consumer is sending it right now


def _param(name: str, column: str) -> BindParameter[Any]:
    return bindparam(f"p_{name}", type_=_TABLE.c[column].type)


def _claim_statement() -> Any:
    table = _TABLE
    now = func.now()
    consumer = _param("consumer", "claimed_by")
    return (
        insert(table)
        .values(
            id=_param("id", "id"),
            event_id=_param("event_id", "event_id"),
            event_type=_param("event_type", "event_type"),
            user_id=_param("user_id", "user_id"),
            chat_id=_param("chat_id", "chat_id"),
            chat_index=_param("chat_index", "chat_index"),
            kind=_param("kind", "kind"),
            status=NotificationStatus.SENDING,
            claimed_by=consumer,
            claimed_at=now,
        )
        .on_conflict_do_update(
            index_elements=["event_id", "chat_index", "kind"],
            set_={
                "status": NotificationStatus.SENDING,
                "claimed_by": consumer,
                "claimed_at": now,
                "attempts": table.c.attempts + 1,
                "updated_at": now,
            },
            # A failed try may be retried; a claim whose holder died expires with its lease.
            where=or_(
                table.c.status == NotificationStatus.FAILED,
                (table.c.status == NotificationStatus.SENDING)
                & (table.c.claimed_at < now - bindparam("p_lease", type_=Interval())),
            ),
        )
        .returning(table.c.id)
    )


#: Built once: a message costs the statement's execution, not its construction and
#: cache key (issue 17's profile had both in the consumer's top frames).
_CLAIM = _claim_statement()
_CLAIM_STATUS = select(_TABLE.c.status).where(
    _TABLE.c.event_id == _param("event_id", "event_id"),
    _TABLE.c.chat_index == _param("chat_index", "chat_index"),
    _TABLE.c.kind == _param("kind", "kind"),
)
_FINISH = (
    update(_TABLE)
    .where(_TABLE.c.id == _param("id", "id"))
    .values(
        status=_param("status", "status"),
        updated_at=func.now(),
        last_error=_param("last_error", "last_error"),
    )
)
_FINISH_SENT = _FINISH.values(sent_at=func.now(), message_id=_param("message_id", "message_id"))


async def claim(
    session: AsyncSession | AsyncConnection,
    *,
    event_id: UUID,
    event_type: str,
    chat_id: int,
    kind: str,
    consumer: str,
    lease_s: float,
    user_id: str | None = None,
) -> tuple[Claim, UUID | None]:
    """Reserve (event, chat, kind) for ``consumer``: a new row, a failed one, or a stale claim."""
    index = chat_index(chat_id)
    claimed = (
        await session.execute(
            _CLAIM,
            {
                "p_id": new_id(),
                "p_event_id": event_id,
                "p_event_type": event_type,
                "p_user_id": user_id,
                "p_chat_id": chat_id,
                "p_chat_index": index,
                "p_kind": kind,
                "p_consumer": consumer,
                "p_lease": timedelta(seconds=lease_s),
            },
        )
    ).scalar_one_or_none()
    if claimed is not None:
        return Claim.CLAIMED, claimed
    # Rare (a redelivery or a race): which state left the row alone.
    status = await session.scalar(
        _CLAIM_STATUS, {"p_event_id": event_id, "p_chat_index": index, "p_kind": kind}
    )
    if status == NotificationStatus.SENDING:
        return Claim.BUSY, None
    return Claim.DONE, None


async def finish(
    session: AsyncSession | AsyncConnection,
    log_id: UUID,
    *,
    status: str,
    message_id: int | None = None,
    error: str | None = None,
) -> None:
    """Record how a claimed send ended (sent, failed or undeliverable)."""
    params: dict[str, object] = {
        "p_id": log_id,
        "p_status": status,
        "p_last_error": error[:500] if error else None,
    }
    if status == NotificationStatus.SENT:
        params["p_message_id"] = message_id
        await session.execute(_FINISH_SENT, params)
    else:
        await session.execute(_FINISH, params)


async def get_log(
    session: AsyncSession, *, event_id: UUID, chat_id: int, kind: str
) -> NotificationLog | None:
    """One notification's log row."""
    return await session.scalar(
        select(NotificationLog).where(
            NotificationLog.event_id == event_id,
            NotificationLog.chat_index == chat_index(chat_id),
            NotificationLog.kind == kind,
        )
    )


async def user_log(session: AsyncSession, user_id: str) -> list[NotificationLog]:
    """The messages logged for the user (a data export), oldest first."""
    rows = await session.scalars(
        select(NotificationLog)
        .where(NotificationLog.user_id == user_id)
        .order_by(NotificationLog.created_at, NotificationLog.id)
    )
    return list(rows)


async def delete_user_log(session: AsyncSession, user_id: str, *, chat_id: int | None) -> int:
    """Delete the user's log rows (and, given the chat, the rows logged for that chat
    before rows carried their user); how many."""
    condition = NotificationLog.user_id == user_id
    if chat_id is not None:
        condition = or_(condition, NotificationLog.chat_index == chat_index(chat_id))
    result = await session.execute(delete(NotificationLog).where(condition))
    return int(getattr(result, "rowcount", 0) or 0)
