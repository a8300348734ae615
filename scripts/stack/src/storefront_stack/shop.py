"""What end-to-end tests and benchmarks send to buy: a product, an order, an address (and
the call that creates the product).

Written once so that a change to the API's shapes is made in one place; each caller
still chooses what it asserts about (its sku, price, stock, payment token).
"""

from collections.abc import Mapping
from typing import Any

import httpx

__all__ = ["ADDRESS", "UK_ADDRESS", "create_product", "order_body", "product_body"]

#: A shipping address every provider stand-in accepts.
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "1 Main St",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}
#: The address of the service-level and saga tests (their encryption tests look for
#: its words in the stored bytes).
UK_ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 Analytical St",
    "city": "London",
    "postal_code": "N1 9GU",
    "country": "GB",
}


def product_body(
    sku: str,
    *,
    name: str,
    price: int,
    stock: int,
    brand: str = "Brewster",
    category: str = "kitchen",
) -> dict[str, Any]:
    """``POST /api/v1/admin/products``: a product (by default a kitchen product by
    Brewster), priced in EUR."""
    return {
        "sku": sku,
        "name": name,
        "brand": brand,
        "category": category,
        "price": price,
        "currency": "EUR",
        "initial_stock": stock,
    }


def order_body(sku: str, *, token: str, qty: int = 1) -> dict[str, Any]:
    """``POST /api/v1/orders``: ``qty`` of ``sku`` to :data:`ADDRESS`, paid with ``token``."""
    return {
        "items": [{"sku": sku, "qty": qty}],
        "shipping_address": dict(ADDRESS),
        "payment": {"method": "card", "token": token},
    }


async def create_product(
    client: httpx.AsyncClient, headers: Mapping[str, str], body: Mapping[str, Any]
) -> dict[str, Any]:
    """``POST /api/v1/admin/products`` of ``body`` (say, a :func:`product_body`) with the
    staff ``headers``: the product created (a 201, or the assertion shows the answer)."""
    created = await client.post("/api/v1/admin/products", headers=dict(headers), json=dict(body))
    assert created.status_code == 201, created.text
    return dict(created.json())
