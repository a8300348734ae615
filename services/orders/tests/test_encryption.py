"""Shipping and client addresses are encrypted at rest and rotate to a new key."""

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from orders_service import fields
from orders_service.models import CustomerOrder
from orders_service.settings import OrdersSettings
from storefront_kit.db import create_sessionmaker
from storefront_kit.encryption import BlindIndex, FieldCipher, KeyRing, UnknownKeyId
from storefront_kit.ids import new_id
from storefront_kit.migrations import alembic_config
from storefront_stack.keys import rotate_field_keys
from storefront_stack.pytest_plugin import create_test_database

from .conftest import ADDRESS, Orders

PLAIN = [b"Lovelace", b"Analytical", b"N1 9GU", b"London"]


@pytest.fixture
def restore_keys() -> Iterator[None]:
    """These tests install keys of their own: put the test settings' keys back after."""
    yield
    fields.install(*OrdersSettings().field_crypto())


async def _raw_dump(url: str) -> bytes:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    text("SELECT CAST(customer_order AS text) FROM customer_order")
                )
            ).scalars()
            return "\n".join(rows).encode()
    finally:
        await engine.dispose()


async def test_the_raw_table_holds_no_plaintext_address(orders: Orders, database_url: str) -> None:
    order_id = await orders.insert(user_id="user-enc")
    dump = await _raw_dump(database_url)
    assert order_id.encode() in dump  # the row is there...
    for plain in PLAIN:
        assert plain not in dump  # ...its address is not
    shown = await orders.client.get(
        f"/api/v1/orders/{order_id}", headers=orders.keys.headers("user-enc")
    )
    assert shown.status_code == 200, shown.text
    assert shown.json()["shipping_address"] == ADDRESS


async def test_the_raw_table_holds_no_plaintext_client_address(database_url: str) -> None:
    order_id = new_id()
    engine = create_async_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            session.add(
                CustomerOrder(
                    id=order_id,
                    user_id="user-ip",
                    status="PENDING",
                    idempotency_key=uuid.uuid4().hex,
                    request_hash="0" * 64,
                    items=[{"sku": "SKU-1", "qty": 1}],
                    lines=[],
                    shipping_address=ADDRESS,
                    payment_method={"method": "card", "token": "tok"},
                    client_address="203.0.113.77",
                )
            )
        async with create_sessionmaker(engine)() as session:
            stored = await session.get(CustomerOrder, order_id)
            assert stored is not None
            assert stored.client_address == "203.0.113.77"
    finally:
        await engine.dispose()
    dump = await _raw_dump(database_url)
    assert str(order_id).encode() in dump
    assert b"203.0.113.77" not in dump


async def _insert_orders(url: str, count: int) -> None:
    engine = create_async_engine(url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            for _ in range(count):
                session.add(
                    CustomerOrder(
                        id=new_id(),
                        user_id="user-rot",
                        status="CONFIRMED",
                        idempotency_key=uuid.uuid4().hex,
                        request_hash="0" * 64,
                        items=[{"sku": "SKU-1", "qty": 1}],
                        lines=[],
                        shipping_address={**ADDRESS, "phone": "+15550001234"},
                        payment_method={"method": "card", "token": "tok"},
                    )
                )
    finally:
        await engine.dispose()


async def _addresses(url: str) -> list[dict[str, str]]:
    engine = create_async_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            return list((await session.scalars(select(CustomerOrder.shipping_address))).all())
    finally:
        await engine.dispose()


@pytest.mark.usefixtures("restore_keys")
async def test_rotate_keys_reencrypts_every_address_and_the_old_key_can_go(
    postgres_server_url: str,
) -> None:
    url = await asyncio.to_thread(create_test_database, postgres_server_url, "orders_service")
    old, new, index = os.urandom(32), os.urandom(32), BlindIndex(os.urandom(32))
    fields.install(FieldCipher(KeyRing({"old": old}, active="old")), index)
    await _insert_orders(url, 5)
    fields.install(FieldCipher(KeyRing({"old": old, "new": new}, active="new")), index)
    await _insert_orders(url, 1)
    assert len(await _addresses(url)) == 6  # both keys read during the rotation

    rotated = await asyncio.to_thread(
        rotate_field_keys,
        "orders",
        url,
        old=old,
        new=new,
        blind_index_key=os.urandom(32),
        batch_size=2,
    )
    assert rotated.returncode == 0, rotated.stderr
    assert "customer_order 5" in rotated.stdout

    fields.install(FieldCipher(KeyRing({"new": new}, active="new")), index)
    addresses = await _addresses(url)
    assert addresses == [{**ADDRESS, "phone": "+15550001234"}] * 6
    fields.install(FieldCipher(KeyRing({"old": old}, active="old")), index)
    with pytest.raises(UnknownKeyId):
        await _addresses(url)


@pytest.mark.usefixtures("restore_keys")
async def test_the_migration_converts_addresses_both_ways(postgres_server_url: str) -> None:
    url = await asyncio.to_thread(create_test_database, postgres_server_url, "orders_service")
    config = alembic_config("orders_service", url)
    await _insert_orders(url, 3)
    await asyncio.to_thread(command.downgrade, config, "0002")
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            plain = (
                await connection.execute(text("SELECT shipping_address FROM customer_order"))
            ).scalars()
            assert list(plain) == [{**ADDRESS, "phone": "+15550001234"}] * 3
    finally:
        await engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    dump = await _raw_dump(url)
    for value in [*PLAIN, b"5550001234"]:
        assert value not in dump
    assert await _addresses(url) == [{**ADDRESS, "phone": "+15550001234"}] * 3
