"""Telegram linking: deep link → Start → the sender's own contact (proof, TEMP) → code in
that chat → verify (FINAL); every other reply refused, counted and linking nothing."""

import asyncio
from typing import Any

import pytest

from auth_service.fields import phone_index, phone_key, unseal_phone

from .conftest import Auth, bearer, link_token, new_chat_id, new_phone, problem


async def _link(auth: Auth, phone: str) -> str:
    sent = await auth.send(phone)
    assert sent.status_code == 202, sent.text
    link: str = sent.json()["telegram_link"]
    return link_token(link)


async def _refused(auth: Auth, phone: str, *chats: int) -> None:
    """Nothing was sent, linked or remembered for ``phone`` (or the ``chats``)."""
    await asyncio.sleep(0.05)  # a delivery scheduled by mistake would have arrived
    assert auth.notifications.for_phone(phone) == []
    assert (
        await auth.redis.exists(
            f"auth:otp:code:{phone_key(phone)}", f"auth:tg:temp:{phone_key(phone)}"
        )
        == 0
    )
    user = await auth.user_row(phone)
    assert user is None or user["telegram_chat_id"] not in chats


async def test_the_senders_own_contact_proves_the_phone_and_only_then_the_code_comes(
    auth: Auth,
) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    token = await _link(auth, phone)
    assert auth.notifications.for_phone(phone) == []  # nothing is sent before the proof

    started = await auth.start(token, chat_id)
    after_start = await auth.redis.exists(
        f"auth:otp:code:{phone_key(phone)}", f"auth:tg:temp:{phone_key(phone)}"
    )
    pending = await auth.redis.get(f"auth:tg:pending:{chat_id}")
    # Telegram sends the contact's number without the "+", with its own user id
    shared = await auth.contact(chat_id, phone.removeprefix("+"))
    delivered = await auth.notifications.wait_for(phone)
    temp = await auth.redis.get(f"auth:tg:temp:{phone_key(phone)}")
    user_before = await auth.user_row(phone)
    verified = await auth.verify(phone, delivered["code"])

    assert started.status_code == 200
    assert started.json() == {"outcome": "contact_requested"}
    assert after_start == 0  # Start alone links nothing and sends nothing
    assert pending == token
    assert shared.json() == {"outcome": "code_sent", "attempts_left": None}
    assert delivered == {
        "phone": phone,
        "code": delivered["code"],
        "chat_id": chat_id,
        "caller": "auth",
    }
    assert temp == str(chat_id)
    assert user_before is None  # TEMP only: no user, no FINAL link before verify
    assert await auth.redis.exists(f"auth:tg:link:{token}", f"auth:tg:pending:{chat_id}") == 0
    assert verified.status_code == 200
    user = await auth.user_row(phone)
    assert user is not None
    assert user["telegram_chat_id"] == chat_id
    assert user["telegram_linked_at"] is not None
    assert await auth.redis.exists(f"auth:tg:temp:{phone_key(phone)}") == 0

    # the link is permanent: the next send goes straight to the chat
    await auth.allow_resend(phone)
    await auth.send(phone)
    assert (await auth.notifications.wait_for(phone, count=2))["chat_id"] == chat_id

    internal = await auth.client.get(
        f"/internal/auth/users/{user['id']}/telegram",
        headers=bearer(auth.keys.service_token("notifications")),
    )
    assert internal.json() == {"user_id": str(user["id"]), "chat_id": chat_id}


@pytest.mark.parametrize(
    ("label", "reply", "outcome"),
    [
        ("someone else's card", {"user_id": 4242}, "not_own_contact"),
        ("a card of no Telegram user", {"user_id": None}, "not_own_contact"),
        ("a reply not from the chat's user", {"sender_id": 4242}, "not_own_contact"),
        ("a typed number", {"phone_number": None}, "contact_required"),
        ("the sender's own other number", {"phone_number": "+15550009999"}, "phone_mismatch"),
        ("letters", {"phone_number": "call me"}, "invalid_phone"),
        ("too short", {"phone_number": "12"}, "invalid_phone"),
        ("too long", {"phone_number": "1" * 40}, "invalid_phone"),
    ],
)
async def test_a_reply_that_does_not_prove_the_phone_links_nothing_and_counts(
    auth: Auth, label: str, reply: dict[str, Any], outcome: str
) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    token = await _link(auth, phone)
    assert (await auth.start(token, chat_id)).json() == {"outcome": "contact_requested"}
    kwargs = {"phone_number": phone.removeprefix("+"), **reply}

    refused = await auth.contact(chat_id, **kwargs)

    assert refused.status_code == 200, (label, refused.text)
    assert refused.json() == {"outcome": outcome, "attempts_left": 2}, label
    assert await auth.redis.hget(f"auth:tg:link:{token}", "a") == "1", label
    await _refused(auth, phone, chat_id)


async def test_three_refused_replies_burn_the_link_even_for_the_real_owner(auth: Auth) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    token = await _link(auth, phone)
    await auth.start(token, chat_id)

    outcomes = [
        (await auth.contact(chat_id, phone, user_id=7)).json(),
        (await auth.contact(chat_id, None)).json(),
        (await auth.contact(chat_id, "+15550001234")).json(),
    ]
    late = await auth.contact(chat_id, phone)
    again = await auth.start(token, chat_id)

    assert outcomes == [
        {"outcome": "not_own_contact", "attempts_left": 2},
        {"outcome": "contact_required", "attempts_left": 1},
        {"outcome": "link_burned", "attempts_left": 0},
    ]
    assert late.json() == {"outcome": "no_pending_link", "attempts_left": None}
    assert again.json() == {"outcome": "invalid_token"}
    assert await auth.redis.exists(f"auth:tg:link:{token}", f"auth:tg:pending:{chat_id}") == 0
    await _refused(auth, phone, chat_id)


async def test_a_link_works_once_and_only_in_the_first_chat_that_pressed_start(
    auth: Auth,
) -> None:
    phone, owner, other = new_phone(), new_chat_id(), new_chat_id()
    token = await _link(auth, phone)

    first = await auth.start(token, owner)
    forwarded = await auth.start(token, other)  # the link forwarded to (or seen by) another
    foreign_proof = await auth.contact(other, phone.removeprefix("+"))
    await auth.prove(token, owner, phone)  # the first chat still may (Start again is fine)
    replayed = await auth.start(token, owner)
    replayed_elsewhere = await auth.start(token, other)

    assert first.json() == {"outcome": "contact_requested"}
    assert forwarded.json() == {"outcome": "invalid_token"}
    assert foreign_proof.json()["outcome"] == "no_pending_link"
    assert replayed.json() == replayed_elsewhere.json() == {"outcome": "invalid_token"}
    await asyncio.sleep(0.05)
    assert [d["chat_id"] for d in auth.notifications.for_phone(phone)] == [owner]


async def test_another_chats_starts_count_against_the_link_until_it_burns(auth: Auth) -> None:
    phone, owner = new_phone(), new_chat_id()
    token = await _link(auth, phone)
    await auth.start(token, owner)

    for _ in range(3):
        assert (await auth.start(token, new_chat_id())).json() == {"outcome": "invalid_token"}
    late = await auth.contact(owner, phone)

    assert await auth.redis.exists(f"auth:tg:link:{token}") == 0
    assert late.json()["outcome"] == "no_pending_link"
    await _refused(auth, phone, owner)


async def test_a_contact_for_another_links_phone_is_a_mismatch(auth: Auth) -> None:
    """The chat pressed Start for one phone and proves another (whose link it never used)."""
    first, second, chat_id = new_phone(), new_phone(), new_chat_id()
    token_first, token_second = await _link(auth, first), await _link(auth, second)
    await auth.start(token_first, chat_id)

    shared = await auth.contact(chat_id, second)

    assert shared.json() == {"outcome": "phone_mismatch", "attempts_left": 2}
    assert await auth.redis.hget(f"auth:tg:link:{token_second}", "a") == "0"  # untouched
    await _refused(auth, first, chat_id)
    await _refused(auth, second, chat_id)


async def test_unknown_expired_or_absent_links_are_refused(auth: Auth) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    token = await _link(auth, phone)
    await auth.start(token, chat_id)
    await auth.redis.delete(f"auth:tg:link:{token}")  # as if its TTL ran out

    expired = await auth.contact(chat_id, phone)
    unknown = await auth.start("A" * 32, new_chat_id())
    nothing_pending = await auth.contact(new_chat_id(), phone)

    assert expired.json() == {"outcome": "no_pending_link", "attempts_left": None}
    assert unknown.json() == {"outcome": "invalid_token"}
    assert nothing_pending.json() == {"outcome": "no_pending_link", "attempts_left": None}
    await _refused(auth, phone, chat_id)


async def test_a_linked_chat_moves_to_another_number_only_by_proving_it(auth: Auth) -> None:
    """The Telegram account changed its number: its chat follows, on the same proof."""
    old_phone, new_number, chat_id = new_phone(), new_phone(), new_chat_id()
    await auth.login(old_phone, chat_id)
    token = await _link(auth, new_number)
    await auth.start(token, chat_id)
    typed = await auth.contact(chat_id, None)
    assert typed.json()["outcome"] == "contact_required"
    assert (await auth.user_row(old_phone) or {})["telegram_chat_id"] == chat_id

    shared = await auth.contact(chat_id, new_number)
    code = (await auth.notifications.wait_for(new_number))["code"]
    verified = await auth.verify(new_number, code)

    assert shared.json()["outcome"] == "code_sent"
    assert verified.status_code == 200
    assert (await auth.user_row(new_number) or {})["telegram_chat_id"] == chat_id
    assert (await auth.user_row(old_phone) or {})["telegram_chat_id"] is None


async def forgotten(auth: Auth, count: int, *, timeout: float = 5.0) -> list[str]:
    """The first ``count`` users auth told notifications to forget (waits for them)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while len(auth.notifications.forgotten) < count:
        assert asyncio.get_running_loop().time() < deadline, auth.notifications.forgotten
        await asyncio.sleep(0.01)
    return auth.notifications.forgotten[:count]


async def test_notifications_is_told_every_link_change_and_nothing_else(auth: Auth) -> None:
    """Notifications caches user -> chat: each user whose link changed is named, once committed."""
    old_phone, new_number, chat_id = new_phone(), new_phone(), new_chat_id()
    await auth.login(old_phone, chat_id)
    old_user = str((await auth.user_row(old_phone) or {})["id"])
    assert await forgotten(auth, 1) == [old_user]

    await auth.allow_resend(old_phone)
    await auth.login(old_phone, chat_id)  # the same chat again: no change, nothing told
    token = await _link(auth, new_number)
    await auth.prove(token, chat_id, new_number)
    code = (await auth.notifications.wait_for(new_number))["code"]
    assert (await auth.verify(new_number, code)).status_code == 200
    new_user = str((await auth.user_row(new_number) or {})["id"])

    # The chat moved: its old holder and its new one.
    assert sorted(await forgotten(auth, 3)) == sorted([old_user, old_user, new_user])
    await asyncio.sleep(0.1)
    assert len(auth.notifications.forgotten) == 3
    assert auth.notifications.refused == []


async def test_the_proven_owner_takes_a_number_back_from_an_unproven_chat(auth: Auth) -> None:
    """A chat linked before contacts were proven (a squatter) loses the number to its owner."""
    phone, squatter, owner = new_phone(), new_chat_id(), new_chat_id()
    await auth.insert_user(phone, chat_id=squatter)
    sent = await auth.send(phone)
    squatters_code = await auth.notifications.wait_for(phone)
    await auth.prove(link_token(sent.json()["telegram_link"]), owner, phone)
    owners_code = await auth.notifications.wait_for(phone, count=2)

    problem(await auth.verify(phone, squatters_code["code"]), 401, "otp_invalid")
    assert (await auth.verify(phone, owners_code["code"])).status_code == 200
    assert squatters_code["chat_id"] == squatter
    assert owners_code["chat_id"] == owner
    assert (await auth.user_row(phone) or {})["telegram_chat_id"] == owner


async def test_a_staff_phone_without_a_chat_is_never_linked_through_the_bot(auth: Auth) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    await auth.insert_user(phone, roles=["moderator", "customer"])
    sent = await auth.send(phone)
    token = link_token(sent.json()["telegram_link"])  # the same answer as for anyone

    assert (await auth.start(token, chat_id)).json() == {"outcome": "contact_requested"}
    stranger = await auth.contact(chat_id, "+15550000042")
    even_the_owner = await auth.contact(chat_id, phone)

    assert stranger.json()["outcome"] == "phone_mismatch"
    assert even_the_owner.json() == {"outcome": "not_allowed", "attempts_left": 1}
    await _refused(auth, phone, chat_id)


async def test_a_staff_accounts_chat_neither_moves_nor_proves_another_number(
    auth: Auth,
) -> None:
    from auth_service.cli import create_admin

    admin_phone, admin_chat, other = new_phone(), new_chat_id(), new_phone()
    await create_admin(auth.settings.database_url, phone=admin_phone, chat_id=admin_chat)
    token = await _link(auth, other)
    await auth.start(token, admin_chat)

    shared = await auth.contact(admin_chat, other)
    await auth.allow_resend(admin_phone)
    own = await auth.send(admin_phone)  # the admin's own login still reaches their chat
    delivered = await auth.notifications.wait_for(admin_phone)

    assert shared.json() == {"outcome": "chat_taken", "attempts_left": None}
    await _refused(auth, other, admin_chat)
    assert own.status_code == 202
    assert delivered["chat_id"] == admin_chat
    assert (await auth.user_row(admin_phone) or {})["telegram_chat_id"] == admin_chat


async def test_a_resend_after_the_proof_reaches_the_same_temp_chat(auth: Auth) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    await auth.prove(await _link(auth, phone), chat_id, phone)
    first = await auth.notifications.wait_for(phone)
    await auth.allow_resend(phone)

    again = await auth.send(phone)
    second = await auth.notifications.wait_for(phone, count=2)

    assert link_token(again.json()["telegram_link"])
    assert second["chat_id"] == chat_id
    problem(await auth.verify(phone, first["code"]), 401, "otp_invalid")  # replaced
    assert (await auth.verify(phone, second["code"])).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/internal/auth/telegram/start"),
        ("POST", "/internal/auth/telegram/contact"),
        ("GET", "/internal/auth/users/01939a4e-0000-7000-8000-000000000000/telegram"),
    ],
)
async def test_internal_routes_refuse_anything_but_a_service_token_for_auth(
    auth: Auth, method: str, path: str
) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    token = await _link(auth, phone)
    await auth.start(token, chat_id)
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
        if path.endswith("/start"):
            kwargs["json"] = {"token": token, "chat_id": new_chat_id()}
        elif path.endswith("/contact"):
            own = {"phone_number": phone, "user_id": chat_id}
            kwargs["json"] = {"chat_id": chat_id, "sender_id": chat_id, "contact": own}
        response = await auth.client.request(method, path, **kwargs)
        assert response.status_code == 401, (label, response.text)
        assert response.json()["code"] in {"not_authenticated", "invalid_token"}, label
        assert response.headers["www-authenticate"].startswith("Bearer"), label
    link = await auth.redis.hgetall(f"auth:tg:link:{token}")
    assert unseal_phone(link.pop("p")) == phone
    assert link == {"a": "0", "c": str(chat_id)}  # neither spent nor counted
    assert auth.notifications.for_phone(phone) == []


async def test_only_notifications_may_report_a_start(auth: Auth) -> None:
    token = await _link(auth, new_phone())
    response = await auth.start(token, new_chat_id(), caller="orders")
    problem(response, 403, "caller_not_allowed")
    assert await auth.redis.exists(f"auth:tg:link:{token}") == 1


async def test_only_notifications_may_report_a_contact(auth: Auth) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    token = await _link(auth, phone)
    await auth.start(token, chat_id)

    response = await auth.contact(chat_id, phone, caller="orders")

    problem(response, 403, "caller_not_allowed")
    assert await auth.redis.hget(f"auth:tg:link:{token}", "a") == "0"
    await _refused(auth, phone, chat_id)


async def test_bad_contact_bodies_are_422_and_change_nothing(auth: Auth) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    token = await _link(auth, phone)
    await auth.start(token, chat_id)
    service = bearer(auth.keys.service_token())
    own = {"phone_number": phone, "user_id": chat_id}
    for body in [
        {"chat_id": chat_id, "contact": own},  # no sender
        {"chat_id": chat_id, "sender_id": chat_id, "contact": {"user_id": chat_id}},
        {"chat_id": chat_id, "sender_id": chat_id, "contact": {**own, "phone_number": ""}},
        {"chat_id": chat_id, "sender_id": chat_id, "contact": {**own, "phone_number": "1" * 65}},
        {"chat_id": chat_id, "sender_id": chat_id, "contact": {**own, "user_id": "1"}},
        {"chat_id": chat_id, "sender_id": chat_id, "contact": {**own, "user_id": 2**60}},
        {"chat_id": chat_id, "sender_id": chat_id, "contact": {**own, "vcard": "x"}},
        {"chat_id": chat_id, "sender_id": chat_id, "contact": own, "phone": phone},
        {"chat_id": str(chat_id), "sender_id": chat_id, "contact": own},
    ]:
        response = await auth.client.post(
            "/internal/auth/telegram/contact", json=body, headers=service
        )
        problem(response, 422, "validation_error")
    assert await auth.redis.hget(f"auth:tg:link:{token}", "a") == "0"
    await _refused(auth, phone, chat_id)


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
        "UPDATE user_account SET telegram_chat_id = NULL, telegram_chat_index = NULL"
        " WHERE phone_index = :p",
        {"p": phone_index(phone)},
    )
    user = await auth.user_row(phone)
    assert user is not None
    unlinked = await auth.client.get(f"/internal/auth/users/{user['id']}/telegram", headers=service)
    assert unlinked.json() == {"user_id": str(user["id"]), "chat_id": None}


async def test_no_phone_number_is_written_to_redis(auth: Auth) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    token = await _link(auth, phone)
    await auth.start(token, chat_id)
    shared = await auth.contact(chat_id, phone.removeprefix("+"))
    await auth.notifications.wait_for(phone)

    keys = [key async for key in auth.redis.scan_iter(count=1000)]
    # DUMP: every key's whole value as Redis stores it (strings, hashes, rate-limit sets)
    stored = [key.encode() + bytes(await auth.redis.dump(key) or b"") for key in keys]

    assert shared.status_code == 200, shared.text
    assert f"auth:otp:code:{phone_key(phone)}" in keys  # the login's state is there...
    assert any(phone_key(phone) in key and key.startswith("auth:rl") for key in keys)
    assert not [
        value for value in stored if phone.removeprefix("+").encode() in value
    ]  # ...but no number
