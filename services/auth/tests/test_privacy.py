"""Export and erasure in auth: the document gathered from every service (503 when one
is down), and an erasure that clears the account, revokes every token, is audited and
leaves ``user.erased`` in the outbox and on ``users.events``."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from auth_service.cli import create_admin
from auth_service.fields import phone_key
from auth_service.service.privacy import USERS_STREAM
from jwt_core_lib import CallerKeys, ServiceTokenVerifier, TokenError
from storefront_kit.revocation import revoked_key
from storefront_stack.checks import rows
from storefront_stack.processes import free_port
from storefront_stack.serving import local_server, start

from .conftest import Auth, Keys, bearer, login_as, new_chat_id, new_phone, problem

ORDER = {
    "id": "0190f1b2-7c1e-7e4a-9d55-3c1d0c9b2a11",
    "status": "CONFIRMED",
    "reason": None,
    "reason_detail": None,
    "items": [{"sku": "SKU-1", "qty": 1}],
    "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 1000, "currency": "EUR", "name": "A"}],
    "subtotal": 1000,
    "total": 1000,
    "currency": "EUR",
    "shipping_address": {"name": "Ada", "line1": "1 Main St", "phone": "+15550000001"},
    "payment_method": {"method": "card", "token": "tok_test"},
    "client_address": "203.0.113.9",
    "payment_id": "pay_1",
    "shipment_id": "shp_1",
    "tracking_number": "TRK1",
    "label_url": None,
    "steps": [],
    "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z",
}


@pytest.fixture(scope="module")
async def holders(keys: Keys) -> AsyncIterator[str]:
    """Orders' and ws-gateway's export routes, checking auth's service token."""
    verifiers = {
        name: ServiceTokenVerifier(
            callers=CallerKeys({"auth": [keys.services["auth"].public_key]}), audience=name
        )
        for name in ("orders", "ws-gateway")
    }

    async def check(request: Request, audience: str) -> JSONResponse | None:
        try:
            await verifiers[audience].verify(
                request.headers.get("authorization", "").removeprefix("Bearer ")
            )
        except TokenError:
            return JSONResponse({"code": "invalid_token"}, status_code=401)
        return None

    async def orders(request: Request) -> JSONResponse:
        return await check(request, "orders") or JSONResponse({"orders": [ORDER]})

    async def presence(request: Request) -> JSONResponse:
        return await check(request, "ws-gateway") or JSONResponse(
            {"online": True, "connections": 2}
        )

    app = Starlette(
        routes=[
            Route("/internal/orders/users/{user_id}/export", orders),
            Route("/internal/ws-gateway/users/{user_id}/presence", presence),
        ]
    )
    port = free_port()
    server = local_server(app, port, access_log=False, lifespan="off", ws="none")
    serving = await start(server, "the data holders' stand-in")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await serving


@pytest.fixture
async def app(start_auth: Any, holders: str) -> AsyncIterator[Auth]:
    async with start_auth(orders_url=holders, ws_gateway_url=holders) as running:
        yield running


async def _audit(auth: Auth, target: str) -> list[dict[str, Any]]:
    entries = await rows(
        auth.engine, "SELECT * FROM audit_entry WHERE target_id = :t ORDER BY id", {"t": target}
    )
    return [dict(r._mapping) for r in entries]


async def test_create_admin_reads_its_keys_from_live_users_not_erased_ones(app: Auth) -> None:
    # First in the module: the only row is an erased user's, which has no phone to read.
    await app.execute(
        "INSERT INTO user_account (id, roles, erased_at) VALUES (:id, '{}', now())",
        {"id": uuid.uuid4()},
    )
    phone = new_phone()

    made = await create_admin(
        app.settings.database_url, phone=phone, chat_id=new_chat_id(), settings=app.settings
    )

    assert made["roles"] == ["admin", "customer"]
    assert await app.user_row(phone) is not None


async def test_the_export_holds_the_account_sessions_and_every_services_part(app: Auth) -> None:
    phone, chat = new_phone(), new_chat_id()
    tokens = await app.login(phone, chat)
    headers = {**bearer(tokens["access_token"]), "X-Real-IP": "198.51.100.7"}

    exported = await app.client.get("/api/v1/users/me/export", headers=headers)

    assert exported.status_code == 200, exported.text
    document = exported.json()
    assert document["format"] == "storefront.user-export.v1"
    assert document["account"]["phone"] == phone
    assert document["account"]["telegram"] == {
        "linked": True,
        "chat_id": chat,
        "linked_at": document["account"]["telegram"]["linked_at"],
    }
    assert len(document["sessions"]) == 1
    assert document["orders"][0]["shipping_address"]["line1"] == "1 Main St"
    assert document["notifications"]["messages"][0]["kind"] == "receipt"
    assert document["presence"] == {"online": True, "connections": 2}
    [entry] = await _audit(app, document["account"]["id"])
    assert entry["action"] == "user.exported"
    assert entry["actor_id"] == document["account"]["id"]
    assert entry["client_ip"] == "198.51.100.7"
    assert entry["after"] == {"orders": 1, "messages": 1, "sessions": 1}


async def test_a_service_that_is_down_makes_the_export_a_503_and_records_nothing(
    start_auth: Any, holders: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with start_auth(orders_url=holders, ws_gateway_url=dead) as auth:
        headers, me = await login_as(auth)
        exported = await auth.client.get("/api/v1/users/me/export", headers=headers)
        body = problem(exported, 503, "export_unavailable")
        assert body["service"] == "ws-gateway"
        assert "Retry-After" in exported.headers
        assert await _audit(auth, str(me["id"])) == []


async def test_erasing_oneself_clears_the_account_revokes_every_token_and_stages_the_event(
    app: Auth,
) -> None:
    phone, chat = new_phone(), new_chat_id()
    tokens = await app.login(phone, chat)
    row = await app.user_row(phone)
    assert row is not None
    user_id = str(row["id"])
    headers = bearer(tokens["access_token"])
    # A Start pressed moments ago in the user's chat (a key named after the chat).
    await app.redis.set(f"auth:tg:pending:{chat}", "token", ex=60)

    erased = await app.client.delete("/api/v1/users/me", headers=headers)

    assert erased.status_code == 202, erased.text
    assert erased.json()["user_id"] == user_id
    assert erased.json()["status"] == "accepted"
    async with app.engine.connect() as connection:
        account = (
            (
                await connection.execute(
                    text("SELECT * FROM user_account WHERE id = :id"), {"id": user_id}
                )
            )
            .one()
            ._mapping
        )
        sessions = await connection.scalar(
            text("SELECT count(*) FROM refresh_token WHERE user_id = :id"), {"id": user_id}
        )
        staged = (
            await connection.execute(text("SELECT stream, event_type, envelope FROM outbox_event"))
        ).all()
    for column in ("phone", "phone_index", "telegram_chat_id", "telegram_chat_index"):
        assert account[column] is None, column
    assert account["erased_at"] is not None
    assert account["roles"] == []
    assert sessions == 0
    mine = [s for s in staged if s.envelope["data"] == {"user_id": user_id}]
    assert [(s.stream, s.event_type) for s in mine] == [(USERS_STREAM, "user.erased")]
    # The access token is refused at once (here and, through Redis, on every service).
    assert await app.redis.exists(revoked_key(user_id)) == 1
    assert user_id not in str(await app.redis.keys("*"))
    problem(await app.client.get("/api/v1/users/me", headers=headers), 401, "invalid_token")
    refreshed = await app.client.post(
        "/api/v1/auth/token/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401
    # No key in Redis names the phone or chat any more (codes, cooldowns, rate limits,
    # pending links): dropped right after the commit.
    named = (phone, phone_key(phone), str(chat))
    for _ in range(100):
        names = str(await app.redis.keys("*"))
        if not any(value in names for value in named):
            break
        await asyncio.sleep(0.05)
    for value in named:
        assert value not in names
    [entry] = await _audit(app, user_id)
    assert entry["action"] == "user.erased"
    assert entry["actor_id"] == user_id
    assert phone not in orjson.dumps(entry, default=str).decode()
    # The relay publishes it on users.events.
    for _ in range(200):
        entries = await app.redis.xrange(USERS_STREAM)
        published = [
            orjson.loads(fields["envelope"])
            for _, fields in entries
            if orjson.loads(fields["envelope"])["data"].get("user_id") == user_id
        ]
        if published:
            break
        await asyncio.sleep(0.05)
    assert [e["type"] for e in published] == ["user.erased"]


async def test_the_phone_of_an_erased_user_registers_afresh_as_a_new_user(app: Auth) -> None:
    phone = new_phone()
    tokens = await app.login(phone, new_chat_id())
    first = await app.user_row(phone)
    assert first is not None
    erased = await app.client.delete("/api/v1/users/me", headers=bearer(tokens["access_token"]))
    assert erased.status_code == 202

    again = await app.login(phone, new_chat_id())

    second = await app.user_row(phone)
    assert second is not None
    assert second["id"] != first["id"]
    me = await app.client.get("/api/v1/users/me", headers=bearer(again["access_token"]))
    assert me.status_code == 200
    assert me.json()["phone"] == phone


async def test_admins_export_and_erase_users_audited_moderators_and_customers_get_403(
    app: Auth,
) -> None:
    admin, me = await login_as(app, "admin", "customer")
    moderator, _ = await login_as(app, "moderator", "customer")
    customer, target = await login_as(app)
    path = f"/api/v1/admin/users/{target['id']}"

    for who in (moderator, customer):
        problem(await app.client.get(f"{path}/export", headers=who), 403, "forbidden")
        problem(await app.client.delete(path, headers=who), 403, "forbidden")
    exported = await app.client.get(f"{path}/export", headers=admin)
    assert exported.status_code == 200, exported.text
    assert exported.json()["account"]["id"] == str(target["id"])
    erased = await app.client.delete(path, headers={**admin, "X-Request-ID": "erase-by-admin"})
    assert erased.status_code == 202, erased.text

    entries = await _audit(app, str(target["id"]))
    assert [e["action"] for e in entries] == ["user.exported", "user.erased"]
    assert {e["actor_id"] for e in entries} == {str(me["id"])}
    assert entries[1]["request_id"] == "erase-by-admin"
    assert entries[1]["before"] == {"roles": ["customer"], "telegram_linked": True}
    # The erased user's own token no longer works.
    problem(await app.client.get("/api/v1/users/me", headers=customer), 401, "invalid_token")


async def test_bad_unknown_or_erased_targets_are_4xx_problems_and_change_nothing(
    app: Auth,
) -> None:
    admin, _ = await login_as(app, "admin", "customer")
    _, target = await login_as(app)
    path = f"/api/v1/admin/users/{target['id']}"
    assert (await app.client.delete(path, headers=admin)).status_code == 202
    before = await app.scalar("SELECT count(*) FROM audit_entry")
    outbox = await app.scalar("SELECT count(*) FROM outbox_event")

    problem(
        await app.client.delete("/api/v1/admin/users/not-a-uuid", headers=admin),
        422,
        "validation_error",
    )
    problem(
        await app.client.get("/api/v1/admin/users/not-a-uuid/export", headers=admin),
        422,
        "validation_error",
    )
    unknown = f"/api/v1/admin/users/{uuid.uuid4()}"
    problem(await app.client.delete(unknown, headers=admin), 404, "user_not_found")
    problem(await app.client.get(f"{unknown}/export", headers=admin), 404, "user_not_found")
    problem(await app.client.delete(path, headers=admin), 409, "user_erased")
    problem(await app.client.get(f"{path}/export", headers=admin), 409, "user_erased")
    problem(await app.client.get(path, headers=admin), 404, "user_not_found")

    assert await app.scalar("SELECT count(*) FROM audit_entry") == before
    assert await app.scalar("SELECT count(*) FROM outbox_event") == outbox


async def test_concurrent_erasures_of_one_user_erase_once(app: Auth) -> None:
    admin, _ = await login_as(app, "admin", "customer")
    _, target = await login_as(app)
    path = f"/api/v1/admin/users/{target['id']}"

    answers = await asyncio.gather(*(app.client.delete(path, headers=admin) for _ in range(5)))

    assert sorted(a.status_code for a in answers) == [202, 409, 409, 409, 409]
    staged = await app.scalar(
        "SELECT count(*) FROM outbox_event WHERE envelope->'data'->>'user_id' = :id",
        {"id": str(target["id"])},
    )
    assert staged == 1
