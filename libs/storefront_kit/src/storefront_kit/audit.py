"""The audit log of staff actions: one entry per action, saved with the action itself.

Auth owns the log (its ``audit_entry`` table, ``GET /api/v1/admin/audit``). A service
whose staff action changes its own database stages the entry as an ``audit.recorded``
event in its transactional outbox, in the same transaction as the change
(:func:`audit_event`, stream :data:`AUDIT_STREAM`); auth consumes that stream and
stores each entry once (the event id is the entry id). Auth's own actions write the row
directly.

A route builds an :class:`AuditContext` from the staff token and the request
(:func:`audit_context`: who, and from where); the service code that performs the action
turns it into an :class:`AuditEntry` with :meth:`AuditContext.entry` (what, before and
after). This module reads no configuration: the service passes its trusted proxies.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.requests import HTTPConnection

from jwt_core_lib import TokenClaims
from storefront_kit.events import EventEnvelope
from storefront_kit.forwarded import client_ip
from storefront_kit.ids import new_id
from storefront_kit.request_id import current_request_id
from storefront_kit.security import AdminUser, CurrentUser
from storefront_kit.settings import ServiceSettings
from storefront_kit.tracing import current_traceparent

__all__ = [
    "ACTION_PATTERN",
    "AUDIT_EVENT_TYPE",
    "AUDIT_STREAM",
    "AdminAudit",
    "AuditContext",
    "AuditEntry",
    "SelfAudit",
    "audit_context",
    "audit_event",
]

AUDIT_STREAM = "audit.events"
"""The Redis stream audit entries travel on, from each service's outbox to auth."""
AUDIT_EVENT_TYPE = "audit.recorded"
"""The event type of an audit entry (its ``data`` is an :class:`AuditEntry`)."""
ACTION_PATTERN = r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$"
"""An action names its target and what happened to it: ``product.updated``."""

_ACTION = re.compile(ACTION_PATTERN)
Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class AuditEntry(BaseModel):
    """Who did what to which target, when and from where, and the target before and after.

    ``before`` is ``None`` for a creation, ``after`` for a removal; otherwise both hold
    the fields the action changed (a delta's before and after, not whole rows).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: UUID
    occurred_at: datetime
    service: Name
    actor_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    actor_roles: list[Name] = Field(max_length=16)
    action: Annotated[str, StringConstraints(pattern=ACTION_PATTERN, max_length=64)]
    target_type: Name
    target_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    request_id: Annotated[str, StringConstraints(max_length=128)] | None = None
    client_ip: Annotated[str, StringConstraints(max_length=64)] | None = None


@dataclass(frozen=True)
class AuditContext:
    """Who is acting and from where: what every entry of one request shares."""

    service: str
    actor_id: str
    actor_roles: tuple[str, ...]
    request_id: str | None
    client_ip: str | None

    def entry(
        self,
        *,
        action: str,
        target_type: str,
        target_id: str | UUID,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """The entry of one action done now (a new time-ordered id)."""
        if not _ACTION.match(action):
            raise ValueError(f"not an audit action name: {action!r}")
        return AuditEntry(
            id=new_id(),
            occurred_at=datetime.now(UTC),
            service=self.service,
            actor_id=self.actor_id,
            actor_roles=list(self.actor_roles),
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            before=_jsonable(before),
            after=_jsonable(after),
            request_id=self.request_id,
            client_ip=self.client_ip,
        )


def _jsonable(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None

    class _Values(BaseModel):
        values: dict[str, Any]

    # Through pydantic's JSON mode: UUIDs, datetimes and enums become JSON values now,
    # so the entry reads back the same from the outbox, the stream and the table.
    dumped: dict[str, Any] = _Values(values=dict(values)).model_dump(mode="json")["values"]
    return dumped


def audit_context(
    connection: HTTPConnection,
    actor: TokenClaims,
    *,
    service: str,
    forwarded_allow_ips: str,
) -> AuditContext:
    """The context of a staff request: the token's subject and roles, the request id and
    the client's address as :func:`storefront_kit.forwarded.client_ip` sees it."""
    return AuditContext(
        service=service,
        actor_id=actor.subject,
        actor_roles=tuple(actor.roles),
        request_id=current_request_id(),
        client_ip=client_ip(connection, forwarded_allow_ips=forwarded_allow_ips),
    )


def audit_event(entry: AuditEntry) -> EventEnvelope:
    """The ``audit.recorded`` event of ``entry`` (same id), to stage on :data:`AUDIT_STREAM`."""
    return EventEnvelope(
        id=entry.id,
        type=AUDIT_EVENT_TYPE,
        occurred_at=entry.occurred_at,
        source=entry.service,
        request_id=entry.request_id,
        data=entry.model_dump(mode="json"),
        traceparent=current_traceparent(),
    )


def _context_of(connection: HTTPConnection, actor: TokenClaims) -> AuditContext:
    # The settings the app was made with (the kit's app factory keeps them).
    settings: ServiceSettings = connection.app.state.settings
    return audit_context(
        connection,
        actor,
        service=settings.service_name,
        forwarded_allow_ips=settings.platform.forwarded_allow_ips,
    )


async def _admin_audit(connection: HTTPConnection, admin: AdminUser) -> AuditContext:
    return _context_of(connection, admin)


async def _self_audit(connection: HTTPConnection, user: CurrentUser) -> AuditContext:
    return _context_of(connection, user)


AdminAudit = Annotated[AuditContext, Depends(_admin_audit)]
"""An admin's request, as the audit log records its actor and origin."""
SelfAudit = Annotated[AuditContext, Depends(_self_audit)]
"""A user acting on their own account (export, erasure), as the audit log records it."""
