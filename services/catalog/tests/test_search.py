"""Search and product lookup over a small, known catalogue indexed straight into ES."""

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from elasticsearch import AsyncElasticsearch

from catalog_service.clients.search_index import ensure_index
from catalog_service.settings import CatalogSettings

from .conftest import (
    drop_alias_indices,
    index_products,
    make_settings,
    new_alias,
    product,
    serve_app,
)

CATALOGUE = [
    product("Apple iPhone 15", brand="Apple", category="Phones", price=79_900, available=5,
            created_days=10, description="A phone with a great camera"),
    product("Apple iPhone 15 Pro", brand="Apple", category="Phones", price=119_900, available=0,
            created_days=11),
    product("Samsung Galaxy S24", brand="Samsung", category="Phones", price=89_900, available=3,
            created_days=12),
    product("Google Pixel 8", brand="Google", category="Phones", price=69_900, available=7,
            created_days=9),
    product("Apple MacBook Air", brand="Apple", category="Laptops", price=129_900, available=2,
            created_days=5),
    product("Lenovo ThinkPad X1", brand="Lenovo", category="Laptops", price=159_900, available=1,
            created_days=4),
    product("Sony WH-1000XM5 Headphones", brand="Sony", category="Audio", price=34_900,
            available=10, created_days=3),
    product("Bose QuietComfort Headphones", brand="Bose", category="Audio", price=29_900,
            available=0, created_days=2),
    product("Anker USB-C Cable", brand="Anker", category="Accessories", price=1_299,
            available=100, created_days=1),
    product("Apple AirPods", brand="Apple", category="Audio", price=14_900, available=20,
            created_days=13),
    product("Nokia 3310", brand="Nokia", category="Phones", price=4_900, available=9,
            active=False, created_days=20),
]  # fmt: skip
ACTIVE = [p for p in CATALOGUE if p["active"]]
BY_NAME = {p["name"]: p for p in CATALOGUE}


@pytest.fixture(scope="module")
async def catalogue_alias(elasticsearch_url: str) -> AsyncIterator[str]:
    alias = new_alias()
    settings = make_settings(elasticsearch_url, "redis://127.0.0.1:6379/0", alias)
    es = AsyncElasticsearch(elasticsearch_url, request_timeout=10)
    try:
        await ensure_index(es, settings)
        await index_products(es, settings, CATALOGUE)
        yield alias
        await drop_alias_indices(es, alias)
    finally:
        await es.close()


@pytest.fixture
def search_settings(
    elasticsearch_url: str, redis_url: str, catalogue_alias: str
) -> CatalogSettings:
    return make_settings(elasticsearch_url, redis_url, catalogue_alias, listener_enabled=False)


@pytest.fixture
async def client(search_settings: CatalogSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(search_settings) as client:
        yield client


async def search(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/products/search", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def names(body: dict[str, Any]) -> list[str]:
    return [item["name"] for item in body["items"]]


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    return body


async def test_misspelled_query_finds_the_product(client: httpx.AsyncClient) -> None:
    body = await search(client, q="iphnoe")
    assert set(names(body)) == {"Apple iPhone 15", "Apple iPhone 15 Pro"}
    assert body["total"] == 2
    assert all(item["score"] > 0 for item in body["items"])


async def test_typos_in_brand_and_words_are_tolerated(client: httpx.AsyncClient) -> None:
    assert names(await search(client, q="samsnug galaxy")) == ["Samsung Galaxy S24"]
    assert "Sony WH-1000XM5 Headphones" in names(await search(client, q="headphnes"))


async def test_the_exact_phrase_ranks_first(client: httpx.AsyncClient) -> None:
    body = await search(client, q="Apple iPhone 15 Pro")
    assert names(body)[0] == "Apple iPhone 15 Pro"


async def test_item_shape_carries_price_image_and_availability(client: httpx.AsyncClient) -> None:
    body = await search(client, q="pixel")
    expected = BY_NAME["Google Pixel 8"]
    assert body["items"] == [
        {
            "id": expected["id"],
            "sku": expected["sku"],
            "name": "Google Pixel 8",
            "brand": "Google",
            "category": "Phones",
            "price": 69_900,
            "currency": "EUR",
            "image": expected["images"][0],
            "available": 7,
            "in_stock": True,
            "score": body["items"][0]["score"],
        }
    ]
    assert (body["page"], body["size"]) == (1, 20)


async def test_without_a_query_every_active_product_is_listed(client: httpx.AsyncClient) -> None:
    body = await search(client, size=100)
    assert body["total"] == len(ACTIVE)
    assert "Nokia 3310" not in names(body)  # inactive products are never searchable
    assert all(item["score"] is None for item in body["items"])


async def test_inactive_products_are_not_found_by_name(client: httpx.AsyncClient) -> None:
    assert (await search(client, q="nokia"))["total"] == 0


async def test_facets_count_the_whole_result_set(client: httpx.AsyncClient) -> None:
    body = await search(client, size=1)
    facets = body["facets"]
    assert {f["value"]: f["count"] for f in facets["category"]} == dict(
        Counter(p["category"] for p in ACTIVE)
    )
    assert {f["value"]: f["count"] for f in facets["brand"]} == dict(
        Counter(p["brand"] for p in ACTIVE)
    )
    assert facets["brand"][0] == {"value": "Apple", "count": 4}  # most frequent first
    assert [b["key"] for b in facets["price"]] == [
        "*-1000", "1000-5000", "5000-10000", "10000-50000", "50000-100000", "100000-*",
    ]  # fmt: skip
    assert facets["price"][0] == {"key": "*-1000", "from": None, "to": 1000, "count": 0}
    for bucket in facets["price"]:
        low, high = bucket["from"] or 0, bucket["to"] or 10**12
        assert bucket["count"] == sum(1 for p in ACTIVE if low <= p["price"] < high), bucket


async def test_category_and_brand_filters_agree_with_facets(client: httpx.AsyncClient) -> None:
    body = await search(client, category="phones", brand="APPLE")  # case does not matter
    assert names(body) == ["Apple iPhone 15 Pro", "Apple iPhone 15"]  # newest first on ties
    assert body["total"] == 2
    assert body["facets"]["category"] == [{"value": "Phones", "count": 2}]
    assert body["facets"]["brand"] == [{"value": "Apple", "count": 2}]
    assert sum(b["count"] for b in body["facets"]["price"]) == 2


async def test_price_range_and_in_stock_filters(client: httpx.AsyncClient) -> None:
    body = await search(client, min_price=29_900, max_price=89_900, size=100)
    assert sorted(names(body)) == sorted(
        p["name"] for p in ACTIVE if 29_900 <= p["price"] <= 89_900
    )
    in_stock = await search(client, in_stock="true", size=100)
    assert sorted(names(in_stock)) == sorted(
        p["name"] for p in ACTIVE if p["stock"]["available"] > 0
    )
    assert all(item["in_stock"] and item["available"] > 0 for item in in_stock["items"])
    out = await search(client, in_stock="false", size=100)
    assert sorted(names(out)) == ["Apple iPhone 15 Pro", "Bose QuietComfort Headphones"]


async def test_sorts_by_price_both_ways_and_by_newest(client: httpx.AsyncClient) -> None:
    ascending = await search(client, sort="price_asc", size=100)
    assert [i["price"] for i in ascending["items"]] == sorted(p["price"] for p in ACTIVE)
    descending = await search(client, sort="price_desc", size=100)
    assert [i["price"] for i in descending["items"]] == sorted(
        (p["price"] for p in ACTIVE), reverse=True
    )
    newest = await search(client, sort="newest", size=3)
    assert names(newest) == ["Apple AirPods", "Samsung Galaxy S24", "Apple iPhone 15 Pro"]


async def test_pages_do_not_overlap(client: httpx.AsyncClient) -> None:
    pages = [await search(client, sort="price_asc", size=4, page=n) for n in (1, 2, 3)]
    seen = [name for body in pages for name in names(body)]
    assert len(seen) == len(set(seen)) == len(ACTIVE)
    assert all(body["total"] == len(ACTIVE) for body in pages)
    assert [body["page"] for body in pages] == [1, 2, 3]


@pytest.mark.parametrize(
    "params",
    [
        {"size": 101},
        {"size": 0},
        {"page": 0},
        {"page": 101, "size": 100},  # beyond the 10 000 result window
        {"min_price": -1},
        {"max_price": -5},
        {"min_price": 500, "max_price": 100},
        {"sort": "popularity"},
        {"in_stock": "maybe"},
        {"q": "x" * 201},
        {"page": "two"},
    ],
)
async def test_bad_search_parameters_are_422_problems(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await client.get("/api/v1/products/search", params=params)
    body = assert_problem(response, 422, "validation_error")
    assert "elasticsearch" not in response.text.lower()
    assert body["instance"] == "/api/v1/products/search"


@pytest.mark.parametrize(
    "q",
    [
        'name:(a OR b)^5 /re.*/ \\"',
        "*:*",
        "brand:Apple AND price:[0 TO *]",
        '{"query": {"match_all": {}}}',
        "~~~ !!! ??? && || -+",
    ],
)
async def test_query_language_is_refused_with_a_problem(client: httpx.AsyncClient, q: str) -> None:
    response = await client.get("/api/v1/products/search", params={"q": q})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "unsupported_query_syntax"
    assert body["found"] in q


@pytest.mark.parametrize(
    "q", ["((((", "a" * 200, "ünïcødé 📱 iphone", "usb-c (white) 10:30 C++?", '"macbook air"']
)
async def test_ordinary_punctuation_is_searched_as_plain_text(
    client: httpx.AsyncClient, q: str
) -> None:
    response = await client.get("/api/v1/products/search", params={"q": q})
    assert response.status_code == 200, response.text
    assert response.json()["total"] <= len(ACTIVE)


async def test_product_page_shows_availability(client: httpx.AsyncClient) -> None:
    expected = BY_NAME["Apple MacBook Air"]
    response = await client.get(f"/api/v1/products/{expected['id']}")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "id": expected["id"],
        "sku": expected["sku"],
        "name": "Apple MacBook Air",
        "description": "",
        "brand": "Apple",
        "category": "Laptops",
        "attributes": {"colour": "black"},
        "price": 129_900,
        "currency": "EUR",
        "images": expected["images"],
        "on_hand": 3,
        "reserved": 1,
        "available": 2,
        "in_stock": True,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
        "version": 1,
    }
    assert body["created_at"].startswith("2026-01-06")


async def test_unknown_and_inactive_products_are_404(client: httpx.AsyncClient) -> None:
    missing = await client.get(f"/api/v1/products/{uuid.uuid4()}")
    assert_problem(missing, 404, "product_not_found")
    inactive = await client.get(f"/api/v1/products/{BY_NAME['Nokia 3310']['id']}")
    assert_problem(inactive, 404, "product_not_found")


async def test_malformed_product_id_is_a_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/products/not-a-uuid")
    assert_problem(response, 422, "validation_error")


async def test_openapi_documents_search_and_its_problems(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    search_op = schema["paths"]["/api/v1/products/search"]["get"]
    assert {"422", "503"} <= set(search_op["responses"])
    params = {p["name"] for p in search_op["parameters"]}
    assert params == {
        "q", "category", "brand", "min_price", "max_price", "in_stock", "sort", "page", "size",
    }  # fmt: skip
    assert "404" in schema["paths"]["/api/v1/products/{product_id}"]["get"]["responses"]


@pytest.mark.parametrize(
    "params",
    [
        {"min_price": str(2**63)},  # beyond Elasticsearch's long
        {"max_price": "99999999999999999999"},
        {"min_price": "-1"},
        {"page": "10001"},
        {"page": "101", "size": "100"},  # beyond the result window
        {"size": "0"},
        {"size": "101"},
        {"page": "0"},
        {"page": str(2**64)},
        {"q": "x" * 201},
        {"in_stock": "maybe"},
        {"sort": "price"},
    ],
)
async def test_boundary_values_are_422_problems_never_engine_errors(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get("/api/v1/products/search", params=params)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    "params",
    [
        {"min_price": "1000000000000", "max_price": "1000000000000"},  # the largest price
        {"page": "100", "size": "100"},  # the deepest page of the window
        {"q": "x" * 200},
    ],
)
async def test_the_largest_accepted_values_reach_elasticsearch_and_answer(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get("/api/v1/products/search", params=params)

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("product_id", ["0", "not-a-uuid", "1" * 37])
async def test_a_product_id_that_is_not_a_uuid_is_a_422(
    client: httpx.AsyncClient, product_id: str
) -> None:
    response = await client.get(f"/api/v1/products/{product_id}")

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_page_size_out_of_bounds_is_the_kits_one_paging_problem(
    client: httpx.AsyncClient,
) -> None:
    # The same shape as every other list route's (storefront_kit.paging), both bounds.
    for size, kind in (("101", "less_than_equal"), ("0", "greater_than_equal")):
        response = await client.get("/api/v1/products/search", params={"size": size})
        body = assert_problem(response, 422, "validation_error")
        assert body["title"] == "Request validation failed"
        assert [(e["loc"], e["type"]) for e in body["errors"]] == [(["query", "size"], kind)]
