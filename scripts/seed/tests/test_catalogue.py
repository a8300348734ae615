"""The generated catalogue is reproducible, varied and valid for the inventory API."""

import re
from collections import Counter

from storefront_seed.catalogue import CATEGORIES, generate_catalogue

SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def test_the_same_seed_gives_the_same_catalogue() -> None:
    assert list(generate_catalogue(300, seed=7)) == list(generate_catalogue(300, seed=7))
    assert list(generate_catalogue(50, seed=7)) != list(generate_catalogue(50, seed=8))


def test_products_are_valid_and_unique() -> None:
    products = list(generate_catalogue(2_000))
    assert len({p.sku for p in products}) == 2_000
    for product in products:
        assert SKU.match(product.sku), product.sku
        assert 0 < product.price < 1_000_000
        assert product.currency == "EUR"
        assert product.initial_stock >= 0
        assert product.brand in CATEGORIES[product.category][0]
        assert product.as_request()["sku"] == product.sku


def test_every_category_and_brand_appears_and_some_are_sold_out() -> None:
    products = list(generate_catalogue(2_000))
    assert set(Counter(p.category for p in products)) == set(CATEGORIES)
    brands = {brand for brands, _, _ in CATEGORIES.values() for brand in brands}
    assert {p.brand for p in products} == brands
    sold_out = sum(1 for p in products if p.initial_stock == 0)
    assert 50 < sold_out < 400
