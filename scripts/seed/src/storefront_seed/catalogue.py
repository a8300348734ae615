"""A realistic product catalogue, generated reproducibly from a seed value.

The same seed always yields the same products (skus, names, prices, stock), so a
second seed run recognises every product and changes nothing.
"""

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from faker import Faker

__all__ = ["CATEGORIES", "ProductSeed", "generate_catalogue"]

# category -> (brands, product nouns, (min, max) price in cents, attribute generators)
CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[int, int]]] = {
    "phones": (
        ("Apple", "Samsung", "Google", "Xiaomi", "OnePlus", "Nokia"),
        ("iPhone", "Galaxy", "Pixel", "Smartphone", "Phone"),
        (9_900, 149_900),
    ),
    "laptops": (
        ("Lenovo", "Dell", "HP", "Apple", "Asus", "Acer"),
        ("Laptop", "Notebook", "Ultrabook", "MacBook", "Chromebook"),
        (29_900, 349_900),
    ),
    "audio": (
        ("Sony", "Bose", "Sennheiser", "JBL", "Apple", "Audio-Technica"),
        ("Headphones", "Earbuds", "Speaker", "Soundbar", "Turntable"),
        (1_900, 59_900),
    ),
    "apparel": (
        ("Acme", "Northwind", "Patagonia", "Uniqlo", "Levi's", "Adidas"),
        ("T-shirt", "Hoodie", "Jacket", "Jeans", "Sneakers", "Cap"),
        (990, 24_900),
    ),
    "home": (
        ("Ikea", "Philips", "Dyson", "Tefal", "Bosch", "Muji"),
        ("Lamp", "Kettle", "Vacuum", "Blender", "Chair", "Desk"),
        (1_490, 89_900),
    ),
    "books": (
        ("Penguin", "O'Reilly", "Manning", "Vintage", "Orbit", "Tor"),
        ("Novel", "Cookbook", "Guide", "Handbook", "Anthology", "Atlas"),
        (499, 5_999),
    ),
    "sports": (
        ("Nike", "Decathlon", "Wilson", "Garmin", "Salomon", "Yonex"),
        ("Running Shoes", "Racket", "Watch", "Backpack", "Ball", "Yoga Mat"),
        (990, 69_900),
    ),
    "toys": (
        ("Lego", "Hasbro", "Mattel", "Ravensburger", "Playmobil", "Hot Wheels"),
        ("Building Set", "Puzzle", "Board Game", "Action Figure", "Car Set"),
        (590, 29_900),
    ),
}
COLORS = ("black", "white", "red", "blue", "green", "grey", "silver", "gold", "navy")
SIZES = ("XS", "S", "M", "L", "XL")


@dataclass(frozen=True)
class ProductSeed:
    """One product in the shape the inventory admin API accepts."""

    sku: str
    name: str
    description: str
    brand: str
    category: str
    attributes: dict[str, str]
    price: int
    currency: str
    images: list[str]
    initial_stock: int

    def as_request(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "name": self.name,
            "description": self.description,
            "brand": self.brand,
            "category": self.category,
            "attributes": self.attributes,
            "price": self.price,
            "currency": self.currency,
            "images": self.images,
            "initial_stock": self.initial_stock,
        }


def generate_catalogue(count: int, *, seed: int = 20261123) -> Iterator[ProductSeed]:
    """``count`` products spread over every category and brand, always the same ones."""
    rng = random.Random(seed)
    fake = Faker()
    fake.seed_instance(seed)
    categories = sorted(CATEGORIES)
    for index in range(count):
        category = categories[index % len(categories)]
        brands, nouns, (low, high) = CATEGORIES[category]
        brand = rng.choice(brands)
        noun = rng.choice(nouns)
        model = f"{fake.word().capitalize()} {rng.randint(1, 20)}"
        color = rng.choice(COLORS)
        attributes = {"color": color}
        if category in ("apparel", "sports"):
            attributes["size"] = rng.choice(SIZES)
        # Prices end in 99 or 49 like real ones, spread log-uniformly within the category.
        price = int(low * (high / low) ** rng.random()) // 100 * 100 + rng.choice((99, 49))
        # Most products are in stock; some are sold out (the in_stock filter has work to do).
        stock = 0 if rng.random() < 0.08 else rng.randint(1, 250)
        sku = f"{category[:3].upper()}-{brand[:3].upper().replace(chr(39), '')}-{index:06d}"
        yield ProductSeed(
            sku=sku,
            name=f"{brand} {noun} {model} ({color})",
            description=fake.sentence(nb_words=14),
            brand=brand,
            category=category,
            attributes=attributes,
            price=price,
            currency="EUR",
            images=[f"https://img.storefront.dev/{sku.lower()}.jpg"],
            initial_stock=stock,
        )
