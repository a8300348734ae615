"""The audit entry model, the request context and the ``audit.recorded`` event."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from starlette.requests import Request

from jwt_core_lib import TokenClaims
from storefront_kit.audit import (
    AUDIT_EVENT_TYPE,
    AuditContext,
    AuditEntry,
    audit_context,
    audit_event,
)
from storefront_kit.events import EventEnvelope
from storefront_kit.request_id import request_id_var


def _claims(*roles: str) -> TokenClaims:
    now = datetime.now(UTC)
    return TokenClaims(
        subject="staff-42",
        issuer="storefront-auth",
        audience="storefront",
        roles=roles,
        token_id="t",
        token_use="access",
        issued_at=now,
        expires_at=now + timedelta(minutes=5),
        key_id="k",
    )


def _request(peer: str, headers: dict[str, str]) -> Request:
    return Request(
        {
            "type": "http",
            "method": "POST",
            "path": "/",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": (peer, 50000),
        }
    )


def test_the_context_names_the_actor_the_request_and_the_client_behind_the_gateway() -> None:
    token = request_id_var.set("req-123456")
    try:
        trusted = audit_context(
            _request("10.0.0.5", {"X-Real-IP": "203.0.113.1"}),
            _claims("admin", "customer"),
            service="inventory",
            forwarded_allow_ips="10.0.0.0/8",
        )
        spoofed = audit_context(
            _request("198.51.100.9", {"X-Real-IP": "203.0.113.1"}),
            _claims("admin"),
            service="inventory",
            forwarded_allow_ips="10.0.0.0/8",
        )
    finally:
        request_id_var.reset(token)

    assert trusted == AuditContext(
        service="inventory",
        actor_id="staff-42",
        actor_roles=("admin", "customer"),
        request_id="req-123456",
        client_ip="203.0.113.1",
    )
    assert spoofed.client_ip == "198.51.100.9"  # a header from an untrusted peer is ignored


def test_an_entry_becomes_an_event_with_its_id_and_reads_back_the_same() -> None:
    context = AuditContext("orders", "staff-1", ("admin",), "req-1", "192.0.2.1")
    order_id = uuid.uuid4()
    entry = context.entry(
        action="order.status_changed",
        target_type="order",
        target_id=order_id,
        before={"status": "CONFIRMED", "at": datetime(2026, 1, 1, tzinfo=UTC)},
        after={"status": "PROCESSING", "by": uuid.UUID(int=1)},
    )

    event = EventEnvelope.from_stream_fields(audit_event(entry).to_stream_fields())

    assert (event.id, event.type, event.source) == (entry.id, AUDIT_EVENT_TYPE, "orders")
    assert entry.target_id == str(order_id)
    assert entry.before == {"status": "CONFIRMED", "at": "2026-01-01T00:00:00Z"}
    assert entry.after == {"status": "PROCESSING", "by": str(uuid.UUID(int=1))}
    assert AuditEntry.model_validate(event.data) == entry


@pytest.mark.parametrize("action", ["updated", "Product.updated", "product.", "product updated"])
def test_an_action_must_name_target_and_verb(action: str) -> None:
    context = AuditContext("orders", "staff-1", ("admin",), None, None)
    with pytest.raises(ValueError, match="not an audit action"):
        context.entry(action=action, target_type="order", target_id="o")


def test_an_entry_refuses_unknown_fields_and_oversized_values() -> None:
    context = AuditContext("orders", "staff-1", ("admin",), None, None)
    data = context.entry(action="order.cancelled", target_type="order", target_id="o").model_dump()
    with pytest.raises(ValidationError):
        AuditEntry.model_validate({**data, "extra": 1})
    with pytest.raises(ValidationError):
        AuditEntry.model_validate({**data, "actor_id": "x" * 201})
