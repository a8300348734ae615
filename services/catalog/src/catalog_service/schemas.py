"""Request and response models of the catalog service (inventory's event payloads:
:mod:`catalog_service.events`)."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MAX_PRICE",
    "FacetValue",
    "Facets",
    "PriceBucket",
    "ProductDetail",
    "SearchItem",
    "SearchParams",
    "SearchQuery",
    "SearchResponse",
    "SortKey",
]

SortKey = Literal["relevance", "price_asc", "price_desc", "newest"]


# --- Search ------------------------------------------------------------------------------


#: Prices beyond this are certainly a mistake (10 billion in major units).
MAX_PRICE = 10**12


class SearchQuery(BaseModel):
    """The search's query string as sent: what the endpoint documents and validates.

    Validated as one model (storefront_kit.query): a search is the hottest request of
    the platform, and FastAPI's one-parameter-at-a-time validation cost more than the
    cached answer did. Unknown parameters are ignored, as FastAPI ignores them.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    q: str | None = Field(
        default=None,
        max_length=1000,
        description="Free text; misspellings tolerated.",
        examples=["iphnoe"],
    )
    category: str | None = Field(default=None, min_length=1, max_length=100)
    brand: str | None = Field(default=None, min_length=1, max_length=100)
    min_price: int | None = Field(
        default=None, ge=0, le=MAX_PRICE, description="Integer minor units."
    )
    max_price: int | None = Field(
        default=None, ge=0, le=MAX_PRICE, description="Integer minor units."
    )
    in_stock: bool | None = Field(default=None, description="Only products with units available.")
    sort: SortKey = "relevance"
    page: int = Field(default=1, ge=1, le=10_000)
    size: int = Field(default=20, ge=1, le=1000)


class SearchParams(SearchQuery):
    """A search, normalised: equal searches have equal params (and share a cache entry)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def normalised(cls, **values: Any) -> "SearchParams":
        """Collapse whitespace and case in text (the analyzers and filters ignore both)."""
        for name in ("q", "category", "brand"):
            value = values.get(name)
            if isinstance(value, str):
                value = " ".join(value.split()).lower()
                values[name] = value or None
        return cls(**values)

    @classmethod
    def of(cls, query: SearchQuery) -> "SearchParams":
        """The normalised form of a search as sent."""
        return cls.normalised(**query.model_dump())


class SearchItem(BaseModel):
    id: UUID
    sku: str
    name: str
    brand: str
    category: str
    price: int = Field(description="Integer minor units of `currency`.")
    currency: str
    image: str | None = Field(description="The first image, if any.")
    available: int
    in_stock: bool
    score: float | None = Field(
        default=None, description="Relevance score (only when sorted by relevance with `q`)."
    )


class FacetValue(BaseModel):
    value: str
    count: int


class PriceBucket(BaseModel):
    key: str = Field(examples=["1000-5000"])
    from_: int | None = Field(alias="from", description="Inclusive lower bound (minor units).")
    to: int | None = Field(description="Exclusive upper bound (minor units).")
    count: int

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class Facets(BaseModel):
    category: list[FacetValue]
    brand: list[FacetValue]
    price: list[PriceBucket]


class SearchResponse(BaseModel):
    items: list[SearchItem]
    total: int
    page: int
    size: int
    facets: Facets

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "id": "0190f0c2-6f1e-7cc0-9d1e-5b2a3c4d5e6f",
                            "sku": "APL-IP15-128",
                            "name": "Apple iPhone 15 128 GB",
                            "brand": "Apple",
                            "category": "Phones",
                            "price": 79900,
                            "currency": "EUR",
                            "image": "https://img.example/iphone15.jpg",
                            "available": 12,
                            "in_stock": True,
                            "score": 7.1,
                        }
                    ],
                    "total": 1,
                    "page": 1,
                    "size": 20,
                    "facets": {
                        "category": [{"value": "Phones", "count": 1}],
                        "brand": [{"value": "Apple", "count": 1}],
                        "price": [{"key": "50000-100000", "from": 50000, "to": 100000, "count": 1}],
                    },
                }
            ]
        }
    )


class ProductDetail(BaseModel):
    """One product as the catalogue shows it, with its availability."""

    id: UUID
    sku: str
    name: str
    description: str
    brand: str
    category: str
    attributes: dict[str, Any]
    price: int = Field(description="Integer minor units of `currency`.")
    currency: str
    images: list[str]
    on_hand: int
    reserved: int
    available: int
    in_stock: bool
    created_at: datetime
    updated_at: datetime
    version: int
