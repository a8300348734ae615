"""The demo catalogue loads through the gateway, and loading it twice changes nothing; the
seeded admin, stored encrypted with auth's own keys, logs in through the OTP flow."""

import asyncio
import secrets
from datetime import timedelta

import httpx
import pytest

from jwt_core_lib import SigningKey, TokenIssuer
from storefront_seed.catalogue import generate_catalogue
from storefront_seed.products import load_products
from storefront_seed.users import seed_admin
from storefront_stack.logins import CODE, messages, wait_for_message
from storefront_stack.platform import Platform

pytestmark = pytest.mark.e2e
COUNT = 240


def _admin_token(platform: Platform) -> str:
    issuer = TokenIssuer(
        signing_key=SigningKey.from_pem(platform.platform_env["AUTH_JWT_SIGNING_KEY"]),
        issuer="storefront-auth",
    )
    return issuer.issue(
        subject="seed-test", audience="storefront", ttl=timedelta(minutes=5), roles=("admin",)
    )


async def test_seeding_twice_creates_each_product_once(platform: Platform) -> None:
    assert platform.endpoints is not None
    gateway, token = platform.endpoints.gateway_url, _admin_token(platform)
    products = list(generate_catalogue(COUNT, seed=4242))
    first = await load_products(gateway, token, products, total=COUNT, show_progress=False)
    second = await load_products(gateway, token, products, total=COUNT, show_progress=False)
    assert (first.created, first.existing, first.failed) == (COUNT, 0, [])
    assert (second.created, second.existing, second.failed) == (0, COUNT, [])

    async with httpx.AsyncClient(
        base_url=gateway, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        sample = products[17]
        listed = (await client.get("/api/v1/admin/products", params={"q": sample.sku})).json()
    assert listed["total"] == 1
    (item,) = listed["items"]
    assert (item["sku"], item["price"], item["brand"]) == (sample.sku, sample.price, sample.brand)
    assert item["stock"]["on_hand"] == sample.initial_stock


async def test_the_seeded_admin_logs_in_through_otp_and_is_stored_encrypted(
    platform: Platform,
) -> None:
    """The seed writes with the keys auth runs with (``make run``'s generated ones)."""
    assert platform.endpoints is not None
    phone, chat_id = f"+1555{secrets.randbelow(10**7):07d}", 1_000_000 + secrets.randbelow(10**8)
    environ = {
        **platform.service_env("auth"),
        "SEED_ADMIN_PHONE": phone,
        "SEED_ADMIN_CHAT_ID": str(chat_id),
    }
    seeded = await asyncio.to_thread(seed_admin, platform.endpoints.database_url("auth"), environ)
    assert seeded["created"]

    async with httpx.AsyncClient(base_url=platform.endpoints.gateway_url, timeout=15) as client:
        before = len(await messages(client, chat_id))
        sent = await client.post("/api/v1/auth/otp/send", json={"phone": phone})
        assert sent.status_code == 202, sent.text
        code = await wait_for_message(client, chat_id, CODE, after=before)
        verified = await client.post(
            "/api/v1/auth/otp/verify", json={"phone": phone, "code": code[1]}
        )
        assert verified.status_code == 200, verified.text
        token = verified.json()["access_token"]
        me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["roles"] == ["admin", "customer"]
    assert me.json()["phone"] == phone

    import asyncpg  # the raw table, as someone with a database dump would read it

    dsn = platform.endpoints.database_url("auth").replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        dump = "\n".join(
            row[0]
            for row in await connection.fetch("SELECT CAST(user_account AS text) FROM user_account")
        )
    finally:
        await connection.close()
    assert phone.removeprefix("+") not in dump
    assert str(chat_id) not in dump
