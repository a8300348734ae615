"""Phones and chat ids are encrypted at rest, found by blind index, and rotate to a new key."""

import asyncio
import base64
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from alembic import command
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from auth_service import fields, repository
from auth_service.settings import AuthSettings
from storefront_kit.db import create_sessionmaker
from storefront_kit.encryption import BlindIndex, FieldCipher, KeyRing, UnknownKeyId
from storefront_kit.migrations import alembic_config
from storefront_stack.keys import rotate_field_keys
from storefront_stack.pytest_plugin import create_test_database

from .conftest import Auth, new_chat_id, new_phone


def _key() -> bytes:
    return os.urandom(32)


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.fixture
def restore_keys() -> Iterator[None]:
    """These tests install keys of their own: put the test settings' keys back after."""
    yield
    fields.install(*AuthSettings().field_crypto())


def _digits(value: str | int) -> bytes:
    return str(value).removeprefix("+").encode()


async def test_the_raw_table_holds_no_plaintext_phone_or_chat(auth: Auth) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    first = await auth.login(phone, chat_id)
    async with auth.engine.connect() as connection:
        rows = (await connection.execute(text("SELECT * FROM user_account"))).all()
        as_text = (
            await connection.execute(text("SELECT CAST(user_account AS text) FROM user_account"))
        ).scalars()
        dump = "\n".join(as_text)
    assert rows
    for row in rows:
        stored = b"".join(v for v in row._mapping.values() if isinstance(v, bytes))
        assert _digits(phone) not in stored
        assert _digits(chat_id) not in stored
    assert phone.removeprefix("+") not in dump
    assert str(chat_id) not in dump
    # ...and the phone still finds its user: a second login is the same account.
    await auth.allow_resend(phone)
    again = await auth.login(phone, chat_id)
    me = await auth.client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {again['access_token']}"}
    )
    assert me.json()["phone"] == phone
    first_me = await auth.client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {first['access_token']}"}
    )
    assert first_me.json()["id"] == me.json()["id"]


async def _make_users(url: str, count: int) -> list[tuple[str, int]]:
    engine = create_async_engine(url)
    made = []
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            for _ in range(count):
                phone, chat_id = new_phone(), new_chat_id()
                user, _ = await repository.ensure_user(session, phone, roles=["customer"])
                assert await repository.link_chat(session, user.id, chat_id, now=datetime.now(UTC))
                made.append((phone, chat_id))
    finally:
        await engine.dispose()
    return made


async def _read_back(url: str, users: list[tuple[str, int]]) -> None:
    engine = create_async_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            for phone, chat_id in users:
                user = await repository.get_user_by_phone(session, phone)
                assert user is not None
                assert (user.phone, user.telegram_chat_id) == (phone, chat_id)
                by_chat = await repository.get_user_by_chat(session, chat_id)
                assert by_chat is not None
                assert by_chat.id == user.id
    finally:
        await engine.dispose()


async def _key_ids(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(text("SELECT phone, telegram_chat_id FROM user_account"))
            ).all()
    finally:
        await engine.dispose()
    cipher = fields.FIELDS.cipher
    return {cipher.key_id_of(bytes(token)) for row in rows for token in row if token is not None}


@pytest.mark.usefixtures("restore_keys")
async def test_rotate_keys_reencrypts_every_row_and_the_old_key_can_go(
    postgres_server_url: str,
) -> None:
    url = await asyncio.to_thread(create_test_database, postgres_server_url, "auth_service")
    old, new, index_key = _key(), _key(), _key()
    index = BlindIndex(index_key)
    fields.install(FieldCipher(KeyRing({"old": old}, active="old")), index)
    before = await _make_users(url, 7)
    assert await _key_ids(url) == {"old"}

    # Both keys in the ring, the new one active: old rows read, new rows sealed anew.
    fields.install(FieldCipher(KeyRing({"old": old, "new": new}, active="new")), index)
    during = await _make_users(url, 2)
    await _read_back(url, before + during)
    assert await _key_ids(url) == {"old", "new"}

    rotated = await asyncio.to_thread(
        rotate_field_keys,
        "auth",
        url,
        old=old,
        new=new,
        blind_index_key=index_key,
        batch_size=3,
    )
    assert rotated.returncode == 0, rotated.stderr
    assert "user_account 7" in rotated.stdout
    assert "no row uses old any more" in rotated.stdout
    assert await _key_ids(url) == {"new"}

    # The old key dropped: everything still reads, lookups by phone and chat still work.
    fields.install(FieldCipher(KeyRing({"new": new}, active="new")), index)
    await _read_back(url, before + during)
    # Without the new key nothing reads: the rows really moved off the old one.
    fields.install(FieldCipher(KeyRing({"old": old}, active="old")), index)
    with pytest.raises(UnknownKeyId):
        await _read_back(url, before[:1])


@pytest.mark.usefixtures("restore_keys")
async def test_the_migration_encrypts_existing_rows_and_downgrades_back(
    postgres_server_url: str,
) -> None:
    url = await asyncio.to_thread(create_test_database, postgres_server_url, "auth_service")
    config = alembic_config("auth_service", url)
    fields.install(*AuthSettings(blind_index_key=SecretStr(_b64(_key()))).field_crypto())
    await asyncio.to_thread(command.downgrade, config, "0002")
    plain = [(new_phone(), new_chat_id()), (new_phone(), None)]
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            for phone, chat_id in plain:
                await connection.execute(
                    text(
                        "INSERT INTO user_account (id, phone, telegram_chat_id)"
                        " VALUES (gen_random_uuid(), :p, :c)"
                    ),
                    {"p": phone, "c": chat_id},
                )
        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.connect() as connection:
            dump = "\n".join(
                (
                    await connection.execute(
                        text("SELECT CAST(user_account AS text) FROM user_account")
                    )
                ).scalars()
            )
        for phone, chat_id in plain:
            assert phone.removeprefix("+") not in dump
            assert chat_id is None or str(chat_id) not in dump
        await _read_back(url, [(p, c) for p, c in plain if c is not None])
        await asyncio.to_thread(command.downgrade, config, "0002")
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT phone, telegram_chat_id FROM user_account")
            )
            back = {(row.phone, row.telegram_chat_id) for row in rows}
        assert back == set(plain)
    finally:
        await engine.dispose()
