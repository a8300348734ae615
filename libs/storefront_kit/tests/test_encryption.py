"""Field encryption: tokens open only with the right key and context, rotation, blind index."""

import asyncio
import base64
import json
import os
from typing import ClassVar

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict
from sqlalchemy import Column, Integer, MetaData, Table, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from storefront_kit.encryption import (
    BlindIndex,
    CipherSlot,
    EncryptedInt,
    EncryptedJSON,
    EncryptedText,
    FieldCipher,
    KeyRing,
    TamperedValue,
    UnknownKeyId,
    decode_key,
)
from storefront_kit.settings import (
    FieldEncryptionSettingsMixin,
    PlatformSettings,
    ServiceSettings,
)
from storefront_stack.pytest_plugin import create_test_database

PHONE = "+15550001234"


def ring(**keys: bytes) -> KeyRing:
    *_, active = keys
    return KeyRing(keys, active=active)


@pytest.fixture
def old_key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def new_key() -> bytes:
    return os.urandom(32)


def test_a_token_opens_to_the_value_and_hides_it(old_key: bytes) -> None:
    cipher = FieldCipher(ring(k1=old_key))
    token = cipher.encrypt_text(PHONE, context="user.phone")
    assert PHONE.encode() not in token
    assert b"15550001234" not in token
    assert cipher.decrypt_text(token, context="user.phone") == PHONE
    assert cipher.key_id_of(token) == "k1"
    # A fresh data key and nonce every time: equal values give unequal tokens.
    assert cipher.encrypt_text(PHONE, context="user.phone") != token


@pytest.mark.parametrize("position", [0, 20, 60, 80, -1])
def test_any_altered_byte_is_detected(old_key: bytes, position: int) -> None:
    cipher = FieldCipher(ring(k1=old_key))
    token = bytearray(cipher.encrypt_text(PHONE, context="user.phone"))
    token[position] ^= 0x01
    with pytest.raises(TamperedValue):
        cipher.decrypt(bytes(token), context="user.phone")


def test_a_token_relabelled_with_another_key_id_is_refused(old_key: bytes) -> None:
    cipher = FieldCipher(KeyRing({"k1": old_key, "k2": old_key}, active="k1"))
    token = cipher.encrypt_text(PHONE, context="c")
    with pytest.raises(TamperedValue):  # the header is bound to both seals
        cipher.decrypt(token.replace(b"k1", b"k2", 1), context="c")
    with pytest.raises(UnknownKeyId):
        cipher.decrypt(token.replace(b"k1", b"k9", 1), context="c")


def test_a_token_moved_to_another_column_does_not_open(old_key: bytes) -> None:
    cipher = FieldCipher(ring(k1=old_key))
    token = cipher.encrypt_text(PHONE, context="user.phone")
    with pytest.raises(TamperedValue):
        cipher.decrypt(token, context="order.shipping_address")


@pytest.mark.parametrize("token", [b"", b"\x02\x02k1" + b"\x00" * 100, b"\x01\x02k", b"\x01\x02k1"])
def test_malformed_tokens_are_refused(old_key: bytes, token: bytes) -> None:
    with pytest.raises(TamperedValue):
        FieldCipher(ring(k1=old_key)).decrypt(token, context="c")


def test_a_token_of_an_unknown_key_id_is_refused(old_key: bytes, new_key: bytes) -> None:
    token = FieldCipher(ring(k1=old_key)).encrypt_text(PHONE, context="c")
    with pytest.raises(UnknownKeyId):
        FieldCipher(ring(k2=new_key)).decrypt(token, context="c")


def test_a_key_swapped_under_the_same_id_does_not_open(old_key: bytes, new_key: bytes) -> None:
    token = FieldCipher(ring(k1=old_key)).encrypt_text(PHONE, context="c")
    with pytest.raises(TamperedValue):
        FieldCipher(ring(k1=new_key)).decrypt(token, context="c")


def test_rotation_reads_both_keys_and_seals_with_the_new_one(
    old_key: bytes, new_key: bytes
) -> None:
    before = FieldCipher(ring(k1=old_key))
    token = before.encrypt_text(PHONE, context="c")
    during = FieldCipher(KeyRing({"k1": old_key, "k2": new_key}, active="k2"))
    assert during.decrypt_text(token, context="c") == PHONE
    assert during.needs_rotation(token)
    rotated = during.reencrypt(token, context="c")
    assert during.key_id_of(rotated) == "k2"
    assert not during.needs_rotation(rotated)
    after = FieldCipher(ring(k2=new_key))  # the old key dropped
    assert after.decrypt_text(rotated, context="c") == PHONE
    with pytest.raises(UnknownKeyId):
        after.decrypt(token, context="c")


def test_a_ring_refuses_bad_keys_and_a_missing_active_id(old_key: bytes) -> None:
    with pytest.raises(ValueError, match="not in the ring"):
        KeyRing({"k1": old_key}, active="k2")
    with pytest.raises(ValueError, match="32 bytes"):
        KeyRing({"k1": old_key[:16]}, active="k1")
    with pytest.raises(ValueError, match="key id"):
        KeyRing({"k 1": old_key}, active="k 1")
    with pytest.raises(ValueError, match="not base64"):
        KeyRing.from_text({"k1": "%%%"}, active="k1")
    encoded = base64.urlsafe_b64encode(old_key).decode().rstrip("=")
    assert decode_key(encoded) == old_key


def test_the_blind_index_is_keyed_normalised_and_per_context(old_key: bytes) -> None:
    index = BlindIndex(old_key)
    digest = index.digest(PHONE, context="phone")
    assert digest == index.digest(f"  {PHONE} ", context="phone")
    assert digest != index.digest("+15550001235", context="phone")
    assert digest != index.digest(PHONE, context="other")
    assert digest != BlindIndex(os.urandom(32)).digest(PHONE, context="phone")
    assert index.digest(42, context="chat") == index.digest("42", context="chat")
    assert len(digest) == 32


def test_a_slot_used_before_keys_are_installed_refuses() -> None:
    with pytest.raises(RuntimeError, match="not installed"):
        _ = CipherSlot("svc").cipher


async def test_column_types_store_tokens_and_load_values(
    postgres_server_url: str, old_key: bytes
) -> None:
    slot = CipherSlot("test")
    slot.install(FieldCipher(ring(k1=old_key)), BlindIndex(old_key))
    table = Table(
        "encrypted_probe",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("phone", EncryptedText(slot, "probe.phone")),
        Column("chat", EncryptedInt(slot, "probe.chat")),
        Column("address", EncryptedJSON(slot, "probe.address")),
    )
    url = await asyncio.to_thread(create_test_database, postgres_server_url)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(table.create)
            try:
                address = {"line1": "1 Main St", "city": "Springfield"}
                await conn.execute(
                    table.insert().values(id=1, phone=PHONE, chat=123456789, address=address)
                )
                await conn.execute(table.insert().values(id=2, phone=None, chat=None, address=None))
                row = (await conn.execute(select(table).where(table.c.id == 1))).one()
                assert (row.phone, row.chat, row.address) == (PHONE, 123456789, address)
                empty = (await conn.execute(select(table).where(table.c.id == 2))).one()
                assert (empty.phone, empty.chat, empty.address) == (None, None, None)
                raw = (
                    await conn.execute(
                        text("SELECT phone, chat, address FROM encrypted_probe WHERE id = 1")
                    )
                ).one()
                stored = b"".join(bytes(value) for value in raw)
                for plain in (b"5550001234", b"123456789", b"Main St", b"Springfield"):
                    assert plain not in stored
            finally:
                await conn.run_sync(table.drop)
    finally:
        await engine.dispose()


class ShopLike(ServiceSettings, FieldEncryptionSettingsMixin):
    model_config = SettingsConfigDict(env_prefix="SHOP_", env_file=None, extra="ignore")
    service_name: ClassVar[str] = "shop"


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_settings_build_a_working_cipher_from_real_keys() -> None:
    keys = {"k1": _key(), "k2": _key()}
    settings = ShopLike(
        encryption_keys=SecretStr(json.dumps(keys)),
        encryption_key_id="k2",
        blind_index_key=SecretStr(_key()),
    )
    cipher, index = settings.field_crypto()
    assert cipher.ring.ids == {"k1", "k2"}
    assert cipher.ring.active_id == "k2"
    assert index.digest(PHONE, context="c") == BlindIndex(
        decode_key(settings.blind_index_key.get_secret_value())
    ).digest(PHONE, context="c")


@pytest.mark.parametrize("field", ["encryption_keys", "blind_index_key"])
def test_placeholder_keys_are_refused_in_production(field: str) -> None:
    real = {
        "encryption_keys": SecretStr(json.dumps({"k1": _key()})),
        "blind_index_key": SecretStr(_key()),
    }
    real[field] = SecretStr("changeme")
    production = PlatformSettings(environment="production")
    with pytest.raises(ValidationError, match=f"SHOP_{field.upper()}"):
        ShopLike(platform=production, **real)
    # Real keys pass in production; placeholders pass in development (a known stand-in key).
    ShopLike(
        platform=production,
        encryption_keys=SecretStr(json.dumps({"k1": _key()})),
        blind_index_key=SecretStr(_key()),
    )
    dev_cipher, _ = ShopLike(platform=PlatformSettings(environment="development")).field_crypto()
    assert dev_cipher.ring.active_id == "k1"


@pytest.mark.parametrize(
    ("keys", "active", "message"),
    [
        ("not json", "k1", "not a JSON object"),
        (json.dumps(["k1"]), "k1", "id -> base64 key"),
        (json.dumps({"k1": "c2hvcnQ="}), "k1", "32 bytes"),
        (json.dumps({"k1": "A" * 43 + "="}), "k2", "not in the ring"),
    ],
)
def test_malformed_key_settings_are_refused_without_echoing_keys(
    keys: str, active: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        ShopLike(encryption_keys=SecretStr(keys), encryption_key_id=active)
    assert "c2hvcnQ=" not in str(caught.value)
    assert "A" * 43 not in str(caught.value)


async def test_rotation_alongside_concurrent_writers_loses_no_update(
    postgres_server_url: str,
) -> None:
    """Rows rewritten by requests during a rotation keep the request's value, on the new key."""
    from storefront_kit.key_rotation import EncryptedColumns, count_stale, rotate_columns

    old, new, index_key = os.urandom(32), os.urandom(32), os.urandom(32)
    slot = CipherSlot("rotation")
    table = Table(
        "rotation_probe",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("phone", EncryptedText(slot, "probe.phone")),
    )
    url = await asyncio.to_thread(create_test_database, postgres_server_url)
    engine = create_async_engine(url, pool_size=4)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(table.create)
        slot.install(FieldCipher(ring(old=old)), BlindIndex(index_key))
        async with engine.begin() as conn:
            await conn.execute(
                table.insert(), [{"id": i, "phone": f"+1555{i:07d}"} for i in range(300)]
            )
        during = FieldCipher(KeyRing({"old": old, "new": new}, active="new"))
        slot.install(during, BlindIndex(index_key))

        async def writer() -> dict[int, str]:
            written = {}
            for i in range(0, 300, 7):
                value = f"+1666{i:07d}"
                async with engine.begin() as conn:
                    await conn.execute(table.update().where(table.c.id == i).values(phone=value))
                written[i] = value
                await asyncio.sleep(0)
            return written

        spec = EncryptedColumns("rotation_probe", {"phone": "probe.phone"})
        rotated, written = await asyncio.gather(
            rotate_columns(engine, spec, during, batch_size=10), writer()
        )
        assert 0 < rotated <= 300
        async with engine.connect() as conn:
            assert await count_stale(conn, spec, during) == 0
        slot.install(FieldCipher(ring(new=new)), BlindIndex(index_key))  # the old key dropped
        async with engine.connect() as conn:
            rows = {
                row.id: row.phone for row in await conn.execute(select(table.c.id, table.c.phone))
            }
        expected = {i: written.get(i, f"+1555{i:07d}") for i in range(300)}
        assert rows == expected
    finally:
        await engine.dispose()
