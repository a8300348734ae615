"""The demo catalogue loads through the gateway, and loading it twice changes nothing."""

from datetime import timedelta

import httpx
import pytest

from jwt_core_lib import SigningKey, TokenIssuer
from storefront_seed.catalogue import generate_catalogue
from storefront_seed.products import load_products
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
