"""The audit log of staff actions, which auth keeps for the whole platform.

Auth's own actions (role changes) write their entry in the transaction of the change;
the other services stage ``audit.recorded`` events in their outboxes, which
:class:`AuditRecorder` stores as they arrive on ``audit.events``, each once.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service import repository
from auth_service.errors import InvalidAuditFilter
from auth_service.models import AuditEntry
from auth_service.repository import AuditFilter
from storefront_kit.audit import AUDIT_EVENT_TYPE
from storefront_kit.audit import AuditEntry as AuditRecord
from storefront_kit.events import EventEnvelope, PoisonMessage
from storefront_kit.logging import get_logger

__all__ = ["AuditFilter", "AuditRecorder", "list_entries", "record"]

logger = get_logger(__name__)


async def record(session: AsyncSession, entry: AuditRecord) -> None:
    """Write ``entry`` in the session's transaction (the one of the action it records)."""
    await repository.add_audit_entry(session, entry)


async def list_entries(
    session: AsyncSession, *, filters: AuditFilter, before: UUID | None, limit: int
) -> tuple[Sequence[AuditEntry], UUID | None]:
    """One page, newest first, and the cursor of the next (``None`` on the last page)."""
    _check_window(filters.since, filters.until)
    rows = await repository.list_audit_entries(session, filters, before=before, limit=limit)
    return rows, rows[-1].id if len(rows) == limit else None


def _check_window(since: datetime | None, until: datetime | None) -> None:
    for name, moment in (("since", since), ("until", until)):
        if moment is None:
            continue
        if moment.tzinfo is None:
            raise InvalidAuditFilter(f"{name} needs a UTC offset (e.g. 2026-12-07T10:00:00Z).")
        try:
            moment.astimezone(UTC)
        except OverflowError:
            raise InvalidAuditFilter(f"{name} is out of range.") from None
    if since is not None and until is not None and since >= until:
        raise InvalidAuditFilter("since must be earlier than until.")


class AuditRecorder:
    """The ``audit.events`` handler: stores each entry once (the event id is the key)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def __call__(self, event: EventEnvelope) -> None:
        if event.type != AUDIT_EVENT_TYPE:
            raise PoisonMessage(f"not an audit event: {event.type}")
        try:
            entry = AuditRecord.model_validate(event.data)
        except ValidationError as exc:
            raise PoisonMessage(f"invalid audit entry: {exc.error_count()} errors") from None
        if entry.id != event.id:
            raise PoisonMessage("the audit entry's id is not its event's")
        async with self._sessionmaker() as session, session.begin():
            stored = await repository.add_audit_entry(session, entry)
        if not stored:
            logger.info("audit_entry_redelivered", entry_id=str(entry.id))
