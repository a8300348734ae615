"""Every query of the notifications service (callers own the transaction).

Chat ids are stored encrypted: rows are found through the chat's blind index.
:func:`claim` and :func:`finish` are single Core statements that take a session or a
bare connection; :func:`claim_many` and :func:`finish_many` do the same for a whole
consumer batch in one statement each (rows as arrays, ``unnest``): the order consumer
runs them on a pooled connection of its own, with no ORM session around it (issue 17).
"""

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from notifications_service.fields import chat_index
from notifications_service.models import NotificationLog, NotificationStatus
from storefront_kit.ids import new_id

__all__ = [
    "Claim",
    "Finished",
    "Wanted",
    "claim",
    "claim_many",
    "delete_user_log",
    "finish",
    "finish_many",
    "get_log",
    "user_log",
]

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


#: A notification's unique key: (event id, chat index, kind).
Key = tuple[UUID, bytes, str]


@dataclass(frozen=True, slots=True)
class Wanted:
    """One notification a batch wants to send (a row :func:`claim_many` reserves)."""

    event_id: UUID
    event_type: str
    user_id: str | None
    chat_id: int
    kind: str
    chat_index: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "chat_index", chat_index(self.chat_id))

    @property
    def key(self) -> Key:
        return (self.event_id, self.chat_index, self.kind)


@dataclass(frozen=True, slots=True)
class Finished:
    """How one claimed send ended (a row :func:`finish_many` records)."""

    log_id: UUID
    status: str
    message_id: int | None = None
    error: str | None = None


#: :data:`_CLAIM` for many rows at once: the same insert, conflict rule and lease, the
#: rows given as arrays. Which rows it took comes back by key. (The status literals are
#: :class:`NotificationStatus`'s.)
_CLAIM_MANY = text(
    """
    INSERT INTO notification_log
        (id, event_id, event_type, user_id, chat_id, chat_index, kind,
         status, claimed_by, claimed_at)
    SELECT r.id, r.event_id, r.event_type, r.user_id, r.chat_id, r.chat_index, r.kind,
           'sending', :consumer, now()
    FROM unnest(
        CAST(:ids AS uuid[]), CAST(:event_ids AS uuid[]), CAST(:event_types AS varchar[]),
        CAST(:user_ids AS varchar[]), CAST(:chat_ids AS bytea[]),
        CAST(:chat_indexes AS bytea[]), CAST(:kinds AS varchar[])
    ) AS r(id, event_id, event_type, user_id, chat_id, chat_index, kind)
    ON CONFLICT (event_id, chat_index, kind) DO UPDATE SET
        status = 'sending', claimed_by = excluded.claimed_by, claimed_at = now(),
        attempts = notification_log.attempts + 1, updated_at = now()
    WHERE notification_log.status = 'failed'
       OR (notification_log.status = 'sending'
           AND notification_log.claimed_at < now() - CAST(:lease AS interval))
    RETURNING notification_log.id, notification_log.event_id,
              notification_log.chat_index, notification_log.kind
    """
).columns(_TABLE.c.id, _TABLE.c.event_id, _TABLE.c.chat_index, _TABLE.c.kind)
_STATUS_MANY = text(
    """
    SELECT l.event_id, l.chat_index, l.kind, l.status
    FROM notification_log l
    JOIN unnest(
        CAST(:event_ids AS uuid[]), CAST(:chat_indexes AS bytea[]), CAST(:kinds AS varchar[])
    ) AS r(event_id, chat_index, kind)
      ON l.event_id = r.event_id AND l.chat_index = r.chat_index AND l.kind = r.kind
    """
).columns(_TABLE.c.event_id, _TABLE.c.chat_index, _TABLE.c.kind, _TABLE.c.status)
#: :data:`_FINISH` / :data:`_FINISH_SENT` for many rows at once.
_FINISH_MANY = text(
    """
    UPDATE notification_log AS l SET
        status = r.status,
        updated_at = now(),
        last_error = r.last_error,
        message_id = CASE WHEN r.status = 'sent' THEN r.message_id ELSE l.message_id END,
        sent_at = CASE WHEN r.status = 'sent' THEN now() ELSE l.sent_at END
    FROM unnest(
        CAST(:ids AS uuid[]), CAST(:statuses AS varchar[]), CAST(:message_ids AS bigint[]),
        CAST(:errors AS varchar[])
    ) AS r(id, status, message_id, last_error)
    WHERE l.id = r.id
    """
)


async def claim_many(
    connection: AsyncConnection, wanted: Sequence[Wanted], *, consumer: str, lease_s: float
) -> dict[Key, tuple[Claim, UUID | None]]:
    """:func:`claim` for every row of ``wanted`` in one statement (keys must be distinct).

    Rows go in key order, so two replicas claiming overlapping batches at once take
    their row locks in the same order and cannot deadlock. A second statement, only
    reading, runs only when some rows were left alone (a redelivery or a race).
    """
    rows = sorted(wanted, key=lambda row: row.key)
    seal: Any = _TABLE.c.chat_id.type
    dialect = connection.dialect
    claimed = (
        await connection.execute(
            _CLAIM_MANY,
            {
                "ids": [new_id() for _ in rows],
                "event_ids": [row.event_id for row in rows],
                "event_types": [row.event_type for row in rows],
                "user_ids": [row.user_id for row in rows],
                "chat_ids": [seal.process_bind_param(row.chat_id, dialect) for row in rows],
                "chat_indexes": [row.chat_index for row in rows],
                "kinds": [row.kind for row in rows],
                "consumer": consumer,
                "lease": timedelta(seconds=lease_s),
            },
        )
    ).all()
    found: dict[Key, tuple[Claim, UUID | None]] = {
        (row.event_id, row.chat_index, row.kind): (Claim.CLAIMED, row.id) for row in claimed
    }
    left = [row for row in rows if row.key not in found]
    if left:
        statuses = {
            (row.event_id, row.chat_index, row.kind): row.status
            for row in await connection.execute(
                _STATUS_MANY,
                {
                    "event_ids": [row.event_id for row in left],
                    "chat_indexes": [row.chat_index for row in left],
                    "kinds": [row.kind for row in left],
                },
            )
        }
        for row in left:
            busy = statuses.get(row.key) == NotificationStatus.SENDING
            found[row.key] = (Claim.BUSY if busy else Claim.DONE, None)
    return found


async def finish_many(connection: AsyncConnection, finished: Sequence[Finished]) -> None:
    """:func:`finish` for every row of ``finished`` in one statement."""
    if not finished:
        return
    rows = sorted(finished, key=lambda row: row.log_id)  # lock order, as claim_many
    await connection.execute(
        _FINISH_MANY,
        {
            "ids": [row.log_id for row in rows],
            "statuses": [row.status for row in rows],
            "message_ids": [
                row.message_id if row.status == NotificationStatus.SENT else None for row in rows
            ],
            "errors": [row.error[:500] if row.error else None for row in rows],
        },
    )


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
