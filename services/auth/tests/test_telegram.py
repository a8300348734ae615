"""Telegram linking: deep link → Start (TEMP) → code in that chat → verify (FINAL)."""

import asyncio
from typing import Any

import pytest

from .conftest import Auth, bearer, link_token, new_chat_id, new_phone, problem


async def _link(auth: Auth, phone: str) -> str:
    sent = await auth.send(phone)
    assert sent.status_code == 202, sent.text
    link: str = sent.json()["telegram_link"]
    return link_token(link)


async def test_start_sends_a_code_to_the_chat_and_verify_links_it_for_good(auth: Auth) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    token = await _link(auth, phone)
    assert auth.notifications.for_phone(phone) == []  # nothing is sent before Start
    assert await auth.redis.exists(f"auth:otp:code:{phone}") == 0

    started = await auth.start(token, chat_id)
    delivered = await auth.notifications.wait_for(phone)
    temp = await auth.redis.get(f"auth:tg:temp:{phone}")
    temp_ttl = await auth.redis.ttl(f"auth:tg:temp:{phone}")
    user_before = await auth.user_row(phone)
    verified = await auth.verify(phone, delivered["code"])

    assert started.status_code == 200
    assert started.json() == {"outcome": "code_sent"}
    assert delivered == {
        "phone": phone,
        "code": delivered["code"],
        "chat_id": chat_id,
        "caller": "auth",
    }
    assert temp == str(chat_id)
    assert 0 < temp_ttl <= 300
    assert user_before is None  # TEMP only: no user, no FINAL link before verify
    assert verified.status_code == 200
    user = await auth.user_row(phone)
    assert user is not None
    assert user["telegram_chat_id"] == chat_id
    assert user["telegram_linked_at"] is not None
    assert await auth.redis.exists(f"auth:tg:temp:{phone}") == 0

    # the link is permanent: the next send goes straight to the chat, no link
    await auth.allow_resend(phone)
    again = await auth.send(phone)
    assert again.json()["telegram_link"] is None
    assert (await auth.notifications.wait_for(phone, count=2))["chat_id"] == chat_id

    internal = await auth.client.get(
        f"/internal/auth/users/{user['id']}/telegram",
        headers=bearer(auth.keys.service_token("notifications")),
    )
    assert internal.json() == {"user_id": str(user["id"]), "chat_id": chat_id}


async def test_a_link_token_works_once(auth: Auth) -> None:
    phone = new_phone()
    token = await _link(auth, phone)

    first = await auth.start(token, new_chat_id())
    second = await auth.start(token, new_chat_id())

    assert first.json() == {"outcome": "code_sent"}
    assert second.json() == {"outcome": "invalid_token"}
    await asyncio.sleep(0.05)
    assert len(auth.notifications.for_phone(phone)) == 1


async def test_unknown_or_expired_link_tokens_are_invalid(auth: Auth) -> None:
    phone = new_phone()
    token = await _link(auth, phone)
    await auth.redis.delete(f"auth:tg:link:{token}")  # as if its TTL ran out

    expired = await auth.start(token, new_chat_id())
    unknown = await auth.start("A" * 32, new_chat_id())

    assert expired.status_code == 200
    assert expired.json() == {"outcome": "invalid_token"}
    assert unknown.json() == {"outcome": "invalid_token"}
    assert await auth.redis.exists(f"auth:otp:code:{phone}", f"auth:tg:temp:{phone}") == 0


async def test_a_chat_linked_to_one_user_cannot_be_taken_by_another(auth: Auth) -> None:
    owner_phone, chat_id = new_phone(), new_chat_id()
    await auth.login(owner_phone, chat_id)
    intruder_phone = new_phone()
    token = await _link(auth, intruder_phone)

    started = await auth.start(token, chat_id)

    assert started.json() == {"outcome": "chat_taken"}
    await asyncio.sleep(0.05)
    assert auth.notifications.for_phone(intruder_phone) == []
    assert await auth.redis.exists(f"auth:tg:temp:{intruder_phone}") == 0
    assert (await auth.user_row(owner_phone) or {})["telegram_chat_id"] == chat_id
    assert await auth.user_row(intruder_phone) is None


async def test_a_temp_chat_taken_meanwhile_is_not_moved_at_verify(auth: Auth) -> None:
    """Two phones press Start in the same chat; the first to verify keeps it."""
    chat_id = new_chat_id()
    first, second = new_phone(), new_phone()
    token_a, token_b = await _link(auth, first), await _link(auth, second)
    assert (await auth.start(token_a, chat_id)).json() == {"outcome": "code_sent"}
    assert (await auth.start(token_b, chat_id)).json() == {"outcome": "code_sent"}
    code_a = (await auth.notifications.wait_for(first))["code"]
    code_b = (await auth.notifications.wait_for(second))["code"]

    assert (await auth.verify(first, code_a)).status_code == 200
    assert (await auth.verify(second, code_b)).status_code == 200

    assert (await auth.user_row(first) or {})["telegram_chat_id"] == chat_id
    assert (await auth.user_row(second) or {})["telegram_chat_id"] is None


async def test_a_stale_link_cannot_redirect_a_linked_phone_to_another_chat(auth: Auth) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    stale = await _link(auth, phone)  # handed out before the phone got linked
    await auth.allow_resend(phone)
    await auth.login(phone, chat_id)

    attacker = await auth.start(stale, new_chat_id())

    assert attacker.json() == {"outcome": "invalid_token"}
    await asyncio.sleep(0.05)
    assert [d["chat_id"] for d in auth.notifications.for_phone(phone)] == [chat_id]


async def test_a_resend_after_start_reaches_the_same_temp_chat(auth: Auth) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    await auth.start(await _link(auth, phone), chat_id)
    first = await auth.notifications.wait_for(phone)
    await auth.allow_resend(phone)

    again = await auth.send(phone)
    second = await auth.notifications.wait_for(phone, count=2)

    assert again.json()["telegram_link"]  # another chat could still be chosen
    assert second["chat_id"] == chat_id
    problem(await auth.verify(phone, first["code"]), 401, "otp_invalid")  # replaced
    assert (await auth.verify(phone, second["code"])).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/internal/auth/telegram/start"),
        ("GET", "/internal/auth/users/01939a4e-0000-7000-8000-000000000000/telegram"),
    ],
)
async def test_internal_routes_refuse_anything_but_a_service_token_for_auth(
    auth: Auth, method: str, path: str
) -> None:
    token = await _link(auth, new_phone())
    keys = auth.keys
    refused = {
        "missing": {},
        "admin user token": bearer(keys.user_token("admin")),
        "service token for notifications": bearer(
            keys.service_token("orders", audience="notifications")
        ),
        "garbage": bearer("not.a.token"),
    }
    for label, headers in refused.items():
        kwargs: dict[str, Any] = {"headers": headers}
        if method == "POST":
            kwargs["json"] = {"token": token, "chat_id": new_chat_id()}
        response = await auth.client.request(method, path, **kwargs)
        assert response.status_code == 401, (label, response.text)
        assert response.json()["code"] in {"not_authenticated", "invalid_token"}, label
        assert response.headers["www-authenticate"].startswith("Bearer"), label
    assert await auth.redis.exists(f"auth:tg:link:{token}") == 1  # not consumed


async def test_only_notifications_may_report_a_start(auth: Auth) -> None:
    token = await _link(auth, new_phone())
    response = await auth.start(token, new_chat_id(), caller="orders")
    problem(response, 403, "caller_not_allowed")
    assert await auth.redis.exists(f"auth:tg:link:{token}") == 1


@pytest.mark.parametrize("caller", ["orders", "inventory", "catalog", "ws-gateway"])
async def test_only_notifications_may_read_a_users_chat(auth: Auth, caller: str) -> None:
    response = await auth.client.get(
        "/internal/auth/users/01939a4e-0000-7000-8000-000000000000/telegram",
        headers=bearer(auth.keys.service_token(caller)),
    )
    problem(response, 403, "caller_not_allowed")


async def test_bad_start_bodies_are_422(auth: Auth) -> None:
    service = bearer(auth.keys.service_token())
    for body in [
        {"token": "short", "chat_id": 1},
        {"token": "A" * 32, "chat_id": "1"},
        {"token": "A" * 32, "chat_id": 2**60},
        {"token": "A" * 32, "chat_id": 1, "phone": "+15550000001"},
        {"token": "A/" * 16, "chat_id": 1},
    ]:
        response = await auth.client.post(
            "/internal/auth/telegram/start", json=body, headers=service
        )
        problem(response, 422, "validation_error")


async def test_telegram_chat_of_an_unknown_user_is_404(auth: Auth) -> None:
    service = bearer(auth.keys.service_token("notifications"))
    missing = await auth.client.get(
        "/internal/auth/users/01939a4e-0000-7000-8000-000000000000/telegram", headers=service
    )
    problem(missing, 404, "user_not_found")
    phone = new_phone()
    await auth.login(phone, new_chat_id())
    await auth.execute(
        "UPDATE user_account SET telegram_chat_id = NULL WHERE phone = :p", {"p": phone}
    )
    user = await auth.user_row(phone)
    assert user is not None
    unlinked = await auth.client.get(f"/internal/auth/users/{user['id']}/telegram", headers=service)
    assert unlinked.json() == {"user_id": str(user["id"]), "chat_id": None}
