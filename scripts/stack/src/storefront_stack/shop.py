"""The bodies end-to-end tests and benchmarks send to buy: a product, an order, an address.

Written once so that a change to the API's shapes is made in one place; each caller
still chooses what it asserts about (its sku, price, stock, payment token).
"""

from typing import Any

__all__ = ["ADDRESS", "UK_ADDRESS", "order_body", "product_body"]

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
