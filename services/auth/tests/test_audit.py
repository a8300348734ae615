"""The audit log: role changes recorded with the change, append-only, read by staff,
and the other services' entries stored once from ``audit.events``, even late."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from auth_service.app import AUDIT_GROUP
from auth_service.models import AuditEntry
from storefront_kit.audit import AUDIT_STREAM, AuditContext, audit_event

from .conftest import Auth, login_as, problem

AUDIT = "/api/v1/admin/audit"


async def _entries(auth: Auth, **where: Any) -> list[dict[str, Any]]:
    table = AuditEntry.__table__
    async with auth.engine.connect() as connection:
        rows = await connection.execute(select(table).filter_by(**where).order_by(table.c.id))
        return [dict(row._mapping) for row in rows]


async def test_a_role_change_is_recorded_once_with_who_what_and_from_where(auth: Auth) -> None:
    admin, me = await login_as(auth, "admin", "customer")
    _, target = await login_as(auth)
    path = f"/api/v1/admin/users/{target['id']}/roles"
    headers = {**admin, "X-Request-ID": "audit-role-change-1", "X-Real-IP": "203.0.113.9"}

    changed = await auth.client.put(
        path, json={"roles": ["moderator", "customer"]}, headers=headers
    )

    assert changed.status_code == 200, changed.text
    [entry] = await _entries(auth, target_id=str(target["id"]))
    assert entry["action"] == "user.roles_changed"
    assert entry["service"] == "auth"
    assert entry["target_type"] == "user"
    assert entry["actor_id"] == str(me["id"])
    assert entry["actor_roles"] == ["admin", "customer"]
    assert entry["before"] == {"roles": ["customer"]}
    assert entry["after"] == {"roles": ["moderator", "customer"]}
    assert entry["request_id"] == "audit-role-change-1"
    assert entry["client_ip"] == "203.0.113.9"


async def test_a_refused_or_unchanged_role_change_records_nothing(auth: Auth) -> None:
    admin, me = await login_as(auth, "admin")
    _, target = await login_as(auth)

    same = await auth.client.put(
        f"/api/v1/admin/users/{target['id']}/roles", json={"roles": ["customer"]}, headers=admin
    )
    own = await auth.client.put(
        f"/api/v1/admin/users/{me['id']}/roles", json={"roles": ["customer"]}, headers=admin
    )
    unknown = await auth.client.put(
        f"/api/v1/admin/users/{target['id']}/roles", json={"roles": ["root"]}, headers=admin
    )

    assert same.status_code == 200
    problem(own, 409, "own_admin_role")
    assert unknown.status_code == 422
    assert await _entries(auth, actor_id=str(me["id"])) == []


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entry SET action = 'user.nothing_happened'",
        "DELETE FROM audit_entry",
        "TRUNCATE audit_entry",
    ],
)
async def test_audit_entries_cannot_be_updated_or_deleted(auth: Auth, statement: str) -> None:
    admin, _ = await login_as(auth, "admin")
    _, target = await login_as(auth)
    await auth.client.put(
        f"/api/v1/admin/users/{target['id']}/roles", json={"roles": ["moderator"]}, headers=admin
    )
    [before] = await _entries(auth, target_id=str(target["id"]))

    with pytest.raises(DBAPIError, match="append-only"):
        async with auth.engine.begin() as connection:
            await connection.execute(text(statement))

    assert await _entries(auth, target_id=str(target["id"])) == [before]


def _context(actor: str = "staff-1", service: str = "inventory") -> AuditContext:
    return AuditContext(
        service=service,
        actor_id=actor,
        actor_roles=("admin",),
        request_id="req-audit-test",
        client_ip="198.51.100.7",
    )


async def _publish(auth: Auth, fields: dict[str, str]) -> None:
    await auth.redis.xadd(AUDIT_STREAM, fields)  # type: ignore[arg-type]


async def _wait_for(auth: Auth, count: int, **where: Any) -> list[dict[str, Any]]:
    for _ in range(500):
        rows = await _entries(auth, **where)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} audit entries for {where}")


async def test_entries_from_other_services_are_stored_once_even_when_redelivered(
    auth: Auth,
) -> None:
    entry = _context().entry(
        action="product.updated",
        target_type="product",
        target_id=uuid.uuid4(),
        before={"price": 100},
        after={"price": 120},
    )
    fields = audit_event(entry).to_stream_fields()
    later = _context().entry(action="product.deleted", target_type="product", target_id="p-2")

    await _publish(auth, fields)
    await _publish(auth, fields)  # the relay may publish a row twice (crash before marking it)
    await _publish(auth, audit_event(later).to_stream_fields())

    await _wait_for(auth, 1, id=later.id)
    [stored] = await _entries(auth, id=entry.id)
    assert stored["before"] == {"price": 100}
    assert stored["after"] == {"price": 120}
    assert stored["service"] == "inventory"
    assert stored["client_ip"] == "198.51.100.7"
    assert stored["request_id"] == "req-audit-test"
    assert len(await _entries(auth, actor_id="staff-1")) == 2


async def test_an_invalid_audit_event_is_dead_lettered_not_stored(auth: Auth) -> None:
    good = _context(actor="staff-bad").entry(
        action="order.cancelled", target_type="order", target_id="o"
    )
    event = audit_event(good)
    forged = event.model_copy(update={"data": {**event.data, "action": "DROP TABLE"}})
    other = event.model_copy(update={"id": uuid.uuid4(), "type": "order.created"})

    await _publish(auth, forged.to_stream_fields())
    await _publish(auth, other.to_stream_fields())
    await _publish(
        auth,
        audit_event(
            _context(actor="staff-bad").entry(
                action="order.status_changed", target_type="order", target_id="o"
            )
        ).to_stream_fields(),
    )

    await _wait_for(auth, 1, actor_id="staff-bad")
    assert [row["action"] for row in await _entries(auth, actor_id="staff-bad")] == [
        "order.status_changed"
    ]
    dead = await auth.redis.xrange(f"{AUDIT_STREAM}.dead")
    assert len(dead) == 2
    assert {fields["group"] for _, fields in dead} == {AUDIT_GROUP}


async def test_entries_staged_while_auth_is_down_arrive_once_when_it_is_back(
    start_auth: Any,
) -> None:
    entries = [
        _context(actor="staff-late").entry(
            action="stock.adjusted", target_type="product", target_id=f"p-{n}", after={"n": n}
        )
        for n in range(3)
    ]
    async with start_auth(audit_consumer_enabled=False) as down:
        await down.redis.xgroup_create(AUDIT_STREAM, AUDIT_GROUP, id="0", mkstream=True)
        for entry in entries:
            await _publish(down, audit_event(entry).to_stream_fields())
        await _publish(down, audit_event(entries[0]).to_stream_fields())
        await asyncio.sleep(0.3)
        assert await _entries(down, actor_id="staff-late") == []

    async with start_auth() as back:
        await _wait_for(back, 3, actor_id="staff-late")
        # Everything was handled, the duplicate too (the group has read and acknowledged
        # all four), and it added nothing.
        for _ in range(500):
            [group] = await back.redis.xinfo_groups(AUDIT_STREAM)
            stream = await back.redis.xinfo_stream(AUDIT_STREAM)
            read_all = group["last-delivered-id"] == stream["last-generated-id"]
            if group["pending"] == 0 and read_all:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError(f"the audit consumer did not catch up: {group}")
        rows = await _entries(back, actor_id="staff-late")
    assert sorted(row["target_id"] for row in rows) == ["p-0", "p-1", "p-2"]
    assert [row["after"] for row in sorted(rows, key=lambda r: r["target_id"])] == [
        {"n": 0},
        {"n": 1},
        {"n": 2},
    ]


async def _seed(auth: Auth, actor: str, count: int, *, service: str = "orders") -> list[str]:
    ids = []
    context = _context(actor=actor, service=service)
    async with auth.engine.begin() as connection:
        for n in range(count):
            entry = context.entry(
                action="order.status_changed" if n % 2 else "order.cancelled",
                target_type="order",
                target_id=f"order-{n}",
                before={"status": "CONFIRMED"},
                after={"status": "PROCESSING"},
            )
            values = entry.model_dump(mode="json")
            await connection.execute(
                text(
                    "INSERT INTO audit_entry (id, occurred_at, service, actor_id, actor_roles, "
                    "action, target_type, target_id, before, after, request_id, client_ip) "
                    "VALUES (:id, :occurred_at, :service, :actor_id, :actor_roles, :action, "
                    ":target_type, :target_id, CAST(:before AS jsonb), CAST(:after AS jsonb), "
                    ":request_id, :client_ip)"
                ),
                {
                    **entry.model_dump(),
                    "before": orjson.dumps(values["before"]).decode(),
                    "after": orjson.dumps(values["after"]).decode(),
                },
            )
            ids.append(str(entry.id))
    return ids


async def test_staff_read_the_log_newest_first_filtered_in_keyset_pages(auth: Auth) -> None:
    moderator, _ = await login_as(auth, "moderator")
    actor = f"staff-{uuid.uuid4()}"
    ids = await _seed(auth, actor, 5)

    first = await auth.client.get(AUDIT, params={"actor": actor, "limit": 2}, headers=moderator)
    assert first.status_code == 200, first.text
    cursor = first.json()["next_before"]
    second = await auth.client.get(
        AUDIT, params={"actor": actor, "limit": 2, "before": cursor}, headers=moderator
    )
    third = await auth.client.get(
        AUDIT,
        params={"actor": actor, "limit": 2, "before": second.json()["next_before"]},
        headers=moderator,
    )
    seen = [item["id"] for page in (first, second, third) for item in page.json()["items"]]
    assert seen == list(reversed(ids))
    assert third.json()["next_before"] is None

    cancelled = await auth.client.get(
        AUDIT,
        params={"actor": actor, "action": "order.cancelled", "service": "orders"},
        headers=moderator,
    )
    assert [item["target_id"] for item in cancelled.json()["items"]] == [
        "order-4",
        "order-2",
        "order-0",
    ]
    one = await auth.client.get(
        AUDIT,
        params={"target_type": "order", "target_id": "order-3", "actor": actor},
        headers=moderator,
    )
    [item] = one.json()["items"]
    assert item["before"] == {"status": "CONFIRMED"}
    assert item["after"] == {"status": "PROCESSING"}
    assert item["actor_roles"] == ["admin"]
    other_service = await auth.client.get(
        AUDIT, params={"actor": actor, "service": "inventory"}, headers=moderator
    )
    assert other_service.json()["items"] == []

    now = datetime.now(UTC)
    window = await auth.client.get(
        AUDIT,
        params={
            "actor": actor,
            "since": (now - timedelta(minutes=5)).isoformat(),
            "until": (now + timedelta(minutes=5)).isoformat(),
        },
        headers=moderator,
    )
    future = await auth.client.get(
        AUDIT,
        params={"actor": actor, "since": (now + timedelta(minutes=5)).isoformat()},
        headers=moderator,
    )
    assert len(window.json()["items"]) == 5
    assert future.json()["items"] == []


async def test_customers_cannot_read_the_log_and_bad_filters_are_422_problems(
    auth: Auth,
) -> None:
    customer, _ = await login_as(auth)
    admin, _ = await login_as(auth, "admin")

    problem(await auth.client.get(AUDIT, headers=customer), 403, "forbidden")
    assert (await auth.client.get(AUDIT)).status_code == 401
    now = datetime.now(UTC)
    for params, code in (
        (
            {"since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()},
            "invalid_audit_filter",
        ),
        ({"since": "2026-12-07T10:00:00"}, "invalid_audit_filter"),
        ({"until": "0001-01-01T00:00:00+14:00"}, "invalid_audit_filter"),
        ({"limit": 100_000}, "validation_error"),  # the kit's one paging problem (issue 18)
        ({"action": "DROP TABLE"}, "validation_error"),
        ({"before": "not-a-uuid"}, "validation_error"),
        ({"since": "yesterday"}, "validation_error"),
        ({"limit": 0}, "validation_error"),
        ({"service": "Orders!"}, "validation_error"),
    ):
        problem(await auth.client.get(AUDIT, params=params, headers=admin), 422, code)


async def test_the_audit_route_declares_its_problems(auth: Auth) -> None:
    schema = (await auth.client.get("/openapi.json")).json()
    declared = schema["paths"][AUDIT]["get"]["responses"]
    assert {"401", "403", "422"} <= set(declared)
