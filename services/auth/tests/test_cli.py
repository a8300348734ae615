"""``create-admin`` and the seed make an admin who logs in through the ordinary OTP flow."""

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import Mapping

from auth_service.cli import create_admin
from auth_service.fields import phone_index
from storefront_seed.users import admin_from_environment, seed_admin

from .conftest import Auth, bearer, link_token, new_chat_id, new_phone, problem


async def create_admin_command(
    database_url: str, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m auth_service create-admin`` with ``args`` over ``database_url`` (``env``:
    more of the environment, or other values)."""
    command = [sys.executable, "-m", "auth_service", "create-admin", *args]
    environment = {**os.environ, "AUTH_DATABASE_URL": database_url, **(env or {})}
    return await asyncio.to_thread(
        subprocess.run, command, env=environment, capture_output=True, text=True
    )


async def test_create_admin_command_is_idempotent_and_links_the_chat(auth: Auth) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    command = ["--phone", phone, "--chat-id", str(chat_id)]

    first = await create_admin_command(auth.settings.database_url, *command)
    second = await create_admin_command(auth.settings.database_url, *command)

    assert first.returncode == 0, first.stderr
    assert f"admin created: {phone}" in first.stdout
    assert f"telegram_chat_id={chat_id}" in first.stdout
    assert second.returncode == 0, second.stderr
    assert f"admin updated: {phone}" in second.stdout
    row = await auth.user_row(phone)
    assert row is not None
    assert row["roles"] == ["admin", "customer"]
    assert row["telegram_chat_id"] == chat_id
    assert (
        await auth.scalar(
            "SELECT count(*) FROM user_account WHERE phone_index = :p", {"p": phone_index(phone)}
        )
        == 1
    )


async def test_create_admin_promotes_an_existing_user_and_refuses_a_taken_chat(
    auth: Auth,
) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    await auth.login(phone, chat_id)
    url = auth.settings.database_url

    promoted = await create_admin(url, phone=phone, chat_id=chat_id)
    other_chat = new_chat_id()
    relinked = await create_admin(url, phone=phone, chat_id=other_chat)
    taken = await create_admin_command(url, "--phone", new_phone(), "--chat-id", str(other_chat))
    bad_phone = await create_admin_command(url, "--phone", "12345", "--chat-id", "5")

    assert promoted["created"] is False
    assert promoted["roles"] == ["admin", "customer"]
    assert promoted["telegram_chat_id"] == chat_id
    assert relinked["telegram_chat_id"] == other_chat
    assert taken.returncode != 0
    assert "linked to another user" in taken.stderr
    assert bad_phone.returncode != 0
    assert "phone" in bad_phone.stderr


async def test_the_seeded_admin_logs_in_with_the_code_sent_to_the_seeded_chat(
    auth: Auth,
) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    environ = {"SEED_ADMIN_PHONE": phone, "SEED_ADMIN_CHAT_ID": str(chat_id)}

    first = await asyncio.to_thread(seed_admin, auth.settings.database_url, environ)
    again = await asyncio.to_thread(seed_admin, auth.settings.database_url, environ)
    sent = await auth.send(phone)
    delivered = await auth.notifications.wait_for(phone)
    tokens = (await auth.verify(phone, delivered["code"])).json()
    users = await auth.client.get("/api/v1/admin/users", headers=bearer(tokens["access_token"]))

    assert (first["created"], again["created"]) == (True, False)
    assert again["id"] == first["id"]
    assert link_token(sent.json()["telegram_link"])  # the same answer as for anyone
    assert delivered["chat_id"] == chat_id
    assert users.status_code == 200
    me = await auth.client.get("/api/v1/users/me", headers=bearer(tokens["access_token"]))
    assert me.json()["roles"] == ["admin", "customer"]
    problem(
        await auth.client.put(
            f"/api/v1/admin/users/{first['id']}/roles",
            json={"roles": ["moderator"]},
            headers=bearer(tokens["access_token"]),
        ),
        409,
        "own_admin_role",
    )


def test_seed_defaults() -> None:
    assert admin_from_environment({}) == ("+15550000001", 1000001)
    assert admin_from_environment({"SEED_ADMIN_PHONE": "+15550000002"}) == ("+15550000002", 1000001)


async def test_a_staff_account_cannot_be_created_without_its_chat(auth: Auth) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    url = auth.settings.database_url
    base = ["--phone", phone]

    no_chat = await create_admin_command(url, *base)
    no_chat_moderator = await create_admin_command(url, *base, "--role", "moderator")
    not_staff = await create_admin_command(
        url, *base, "--chat-id", str(chat_id), "--role", "customer"
    )
    assert await auth.user_row(phone) is None  # none of them created anything
    moderator = await create_admin_command(
        url, *base, "--chat-id", str(chat_id), "--role", "moderator"
    )

    for refused in (no_chat, no_chat_moderator):
        assert refused.returncode != 0
        assert "--chat-id" in refused.stderr
    assert not_staff.returncode != 0
    assert "invalid choice" in not_staff.stderr
    assert moderator.returncode == 0, moderator.stderr
    assert f"moderator created: {phone}" in moderator.stdout
    row = await auth.user_row(phone)
    assert row is not None
    assert (row["roles"], row["telegram_chat_id"]) == (["moderator", "customer"], chat_id)


async def test_create_admin_refuses_keys_that_are_not_the_services(auth: Auth) -> None:
    # The database already holds a user written under the service's keys (the fixture's).
    await auth.login(new_phone(), new_chat_id())
    phone, chat_id = new_phone(), new_chat_id()
    other_key = base64.b64encode(os.urandom(32)).decode()
    command = ["--phone", phone, "--chat-id", str(chat_id)]
    url = auth.settings.database_url

    other_cipher = await create_admin_command(
        url,
        *command,
        env={"AUTH_ENCRYPTION_KEYS": json.dumps({"k9": other_key}), "AUTH_ENCRYPTION_KEY_ID": "k9"},
    )
    other_index = await create_admin_command(url, *command, env={"AUTH_BLIND_INDEX_KEY": other_key})

    for refused in (other_cipher, other_index):
        assert refused.returncode != 0
        assert "AUTH_ENCRYPTION_KEYS" in refused.stderr
        assert other_key not in refused.stderr + refused.stdout
    assert await auth.user_row(phone) is None
