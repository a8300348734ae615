"""Catalog through nginx on the whole platform: products created, changed and deleted in
inventory's admin API reach search; bad searches are 4xx problems; a catalog that was
down catches up with everything inventory did meanwhile.

Waits are deadlines polled, never speed assertions: the machine may be loaded (the
deadlines are generous for that reason; on an idle machine each wait takes well under a
second, the catch-up a few seconds).
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from elasticsearch import AsyncElasticsearch

from storefront_stack.logins import bearer, user_token
from storefront_stack.platform import Platform

pytestmark = pytest.mark.e2e

SEARCH = "/api/v1/products/search"
ADMIN = "/api/v1/admin/products"
ES_WORDS = ("elasticsearch", "query_shard", "parse_exception", "search_phase", "lucene")


@pytest.fixture(scope="module")
def admin_headers(platform: Platform) -> dict[str, str]:
    return bearer(user_token(platform.platform_env, "admin", subject="catalog-e2e"))


@pytest.fixture
async def admin(gateway: str, admin_headers: dict[str, str]) -> Any:
    async with httpx.AsyncClient(base_url=gateway, headers=admin_headers, timeout=30) as http:
        yield http


async def until(check: Callable[[], Awaitable[bool]], *, deadline_s: float = 15.0) -> None:
    """Poll ``check`` until true (fails after ``deadline_s``)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not await check():
        assert loop.time() < end, f"not true within {deadline_s}s"
        await asyncio.sleep(0.05)


async def create(admin: httpx.AsyncClient, **fields: Any) -> Any:
    body = {
        "description": "Made for the catalog end-to-end test.",
        "category": "kitchen",
        "currency": "EUR",
        "initial_stock": 5,
        "attributes": {"color": "red"},
        **fields,
    }
    response = await admin.post(ADMIN, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def total(client: httpx.AsyncClient, **params: Any) -> int | None:
    """The search's total while polling; None for a 503 (Elasticsearch briefly too slow)."""
    response = await client.get(SEARCH, params=params)
    if response.status_code == 503:
        assert response.json()["code"] == "search_unavailable"
        return None
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


async def search(client: httpx.AsyncClient, **params: Any) -> Any:
    response = await client.get(SEARCH, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def assert_problem(response: httpx.Response, status: int | None = None) -> Any:
    assert 400 <= response.status_code < 500, response.text
    if status is not None:
        assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == response.status_code
    assert body["code"]
    assert body["type"].startswith("https://")
    assert not any(word in response.text.lower() for word in ES_WORDS), response.text
    return body


async def test_created_products_are_found_with_a_misspelling(
    client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    brand = f"Brand{tag}"
    made = [
        await create(
            admin, sku=f"E2E-{tag}-{n}", name=f"Quokkatron Kettle {n}", brand=brand, price=p
        )
        for n, p in enumerate((2_499, 3_999, 1_299))
    ]

    async def found() -> bool:
        return await total(client, q="quokaktron kettel", brand=brand.lower()) == 3

    await until(found, deadline_s=60)
    body = await search(client, q="quokaktron kettel", brand=brand, sort="price_asc")
    assert [i["name"] for i in body["items"]] == [
        "Quokkatron Kettle 2",
        "Quokkatron Kettle 0",
        "Quokkatron Kettle 1",
    ]
    assert [i["price"] for i in body["items"]] == [1_299, 2_499, 3_999]
    assert {i["id"] for i in body["items"]} == {p["id"] for p in made}
    assert all(i["in_stock"] and i["available"] == 5 for i in body["items"])
    assert body["facets"]["brand"] == [{"value": brand, "count": 3}]
    assert body["facets"]["category"] == [{"value": "kitchen", "count": 3}]
    assert sum(b["count"] for b in body["facets"]["price"]) == 3

    page = await client.get(f"/api/v1/products/{made[0]['id']}")
    assert page.status_code == 200
    assert (page.json()["sku"], page.json()["price"]) == (f"E2E-{tag}-0", 2_499)


async def test_price_change_and_delete_reach_search_and_its_cache(
    client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    brand = f"Brand{tag}"
    made = await create(admin, sku=f"E2E-{tag}", name="Wombatic Toaster", brand=brand, price=4_999)
    params = {"q": "wombatic toaster", "brand": brand}

    async def price_is(price: int) -> bool:
        response = await client.get(SEARCH, params=params)
        if response.status_code == 503:
            return False
        return [i["price"] for i in response.json()["items"]] == [price]

    await until(lambda: price_is(4_999), deadline_s=60)
    assert await search(client, **params) == await search(client, **params)  # cached

    current = await admin.get(f"{ADMIN}/{made['id']}")
    etag = current.headers["etag"]
    stale = await admin.patch(
        f"{ADMIN}/{made['id']}", json={"price": 1}, headers={"If-Match": '"999"'}
    )
    assert stale.status_code == 412
    changed = await admin.patch(
        f"{ADMIN}/{made['id']}", json={"price": 3_499}, headers={"If-Match": etag}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["price"] == 3_499
    # The same (cached) search answers with the new price once the event is applied.
    await until(lambda: price_is(3_499), deadline_s=60)
    page = await client.get(f"/api/v1/products/{made['id']}")
    assert page.json()["price"] == 3_499

    deleted = await admin.delete(
        f"{ADMIN}/{made['id']}", headers={"If-Match": changed.headers["etag"]}
    )
    assert deleted.status_code == 204

    async def gone() -> bool:
        return await total(client, **params) == 0

    await until(gone, deadline_s=60)
    body = assert_problem(await client.get(f"/api/v1/products/{made['id']}"), 404)
    assert body["code"] == "product_not_found"


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"size": 10_000}, 422),
        ({"size": 0}, 422),
        ({"min_price": -1}, 422),
        ({"min_price": 500, "max_price": 100}, 422),
        ({"sort": "bogus"}, 422),
        ({"page": 0}, 422),
        ({"page": 10_000, "size": 100}, 422),
        ({"in_stock": "maybe"}, 422),
        ({"q": "x" * 1_001}, 422),
        ({"q": "x" * 300}, 422),
    ],
)
async def test_bad_searches_are_4xx_problems(
    client: httpx.AsyncClient, params: dict[str, Any], status: int
) -> None:
    assert_problem(await client.get(SEARCH, params=params), status)


@pytest.mark.parametrize(
    "q",
    [
        'name:(foo OR "bar`~ /re.*/',
        '{"query": {"match_all": {}}}',
        "*:* AND _exists_:price",
        "price:>0 || brand:[a TO z]",
        "\\\\ ~~~ ((( ]]] ^^^ !!!",
    ],
)
async def test_query_language_in_q_is_a_422_problem(client: httpx.AsyncClient, q: str) -> None:
    body = assert_problem(await client.get(SEARCH, params={"q": q, "size": 5}), 422)
    assert body["code"] == "unsupported_query_syntax"
    assert body["found"]
    assert not any(word in str(body).lower() for word in ES_WORDS)


@pytest.mark.parametrize(
    "q", ["usb-c cable (white)", '"wireless headphones"', "AT&T 10:30 1/2 C++?", "((( !!! -+"]
)
async def test_ordinary_punctuation_is_searched_as_words(client: httpx.AsyncClient, q: str) -> None:
    response = await client.get(SEARCH, params={"q": q, "size": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items", "total", "page", "size", "facets"}
    assert body["total"] < 50  # matched as words, nothing like a match-all
    assert not any(word in response.text.lower() for word in ES_WORDS)


async def test_unknown_product_is_a_404_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get(f"/api/v1/products/{uuid.uuid4()}"), 404)
    assert body["code"] == "product_not_found"
    assert_problem(await client.get("/api/v1/products/not-a-uuid"), 422)


# --- catch-up after downtime (last: it stops and restarts the catalog service) ----------


async def postgres_products(platform: Platform) -> dict[str, tuple[Any, ...]]:
    assert platform.endpoints is not None
    dsn = platform.endpoints.database_url("inventory").replace("+asyncpg", "", 1)
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT p.id, p.sku, p.price, p.active, s.on_hand, s.reserved"
            " FROM product p JOIN stock s ON s.product_id = p.id WHERE p.deleted_at IS NULL"
        )
    finally:
        await connection.close()
    return {
        str(r["id"]): (r["sku"], r["price"], r["active"], r["on_hand"], r["reserved"]) for r in rows
    }


async def indexed_products(es: AsyncElasticsearch) -> dict[str, tuple[Any, ...]]:
    response = await es.search(
        index="products", query={"term": {"deleted": False}}, size=10_000, track_total_hits=True
    )
    assert response["hits"]["total"]["value"] < 10_000
    return {
        hit["_id"]: (s["sku"], s["price"], s["active"], s["on_hand"], s["reserved"])
        for hit in response["hits"]["hits"]
        for s in [hit["_source"]]
    }


@pytest.fixture
def catalog_restarted(platform: Platform, gateway: str) -> Iterator[None]:
    """Whatever the test does, the catalog service runs again (and is ready) afterwards."""
    yield
    if "catalog" not in platform.processes:
        platform.start_service("catalog")
    deadline = time.monotonic() + 60
    while httpx.get(f"{gateway}/health/catalog", timeout=3).status_code != 200:
        assert time.monotonic() < deadline, "catalog not ready again"
        time.sleep(0.2)


async def test_catalog_catches_up_with_500_changes_made_while_it_was_down(
    platform: Platform,
    gateway: str,
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    catalog_restarted: None,
) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    brand = f"Brand{tag}"
    base = await asyncio.gather(
        *(
            create(admin, sku=f"E2E-{tag}-{n:03d}", name=f"Numbat Mug {n}", brand=brand, price=999)
            for n in range(60)
        )
    )

    async def listed() -> bool:
        return await total(client, brand=brand, size=100) == 60

    await until(listed, deadline_s=120)

    platform.stop_service("catalog")
    down = await client.get("/health/catalog")
    assert down.status_code >= 500  # really down

    # 500 changes: 40 new products, 200 price changes, 220 stock moves, 40 deletions.
    changes: list[Callable[[], Awaitable[httpx.Response]]] = []
    for n in range(40):
        sku, name = f"E2E-{tag}-N{n:03d}", f"Numbat Plate {n}"
        changes.append(
            lambda sku=sku, name=name: admin.post(
                ADMIN,
                json={
                    "sku": sku,
                    "name": name,
                    "brand": brand,
                    "category": "kitchen",
                    "price": 1_500,
                    "currency": "EUR",
                    "initial_stock": 3,
                },
            )
        )
    versions = {item["id"]: item["version"] for item in base}
    price_ids = [item["id"] for item in base[:50]]
    for round_ in range(4):
        for pid in price_ids:
            version = versions[pid] + round_
            changes.append(
                lambda pid=pid, version=version, price=1_000 + round_ * 100 + len(pid) % 7: (
                    admin.patch(
                        f"{ADMIN}/{pid}",
                        json={"price": price},
                        headers={"If-Match": f'"{version}"'},
                    )
                )
            )
    for n in range(220):
        pid = base[n % 60]["id"]
        changes.append(
            lambda pid=pid, n=n: admin.post(
                f"{ADMIN}/{pid}/stock", json={"delta": 1 + n % 3, "reason": "e2e restock"}
            )
        )
    deleted_ids = [item["id"] for item in base[50:]] + [item["id"] for item in base[:30]]
    assert len(changes) == 460
    statuses: list[int] = []
    # Price rounds must stay in order per product (If-Match): groups run one after the
    # other, ten requests at a time within a group.
    groups = [changes[:40], *[changes[40 + 50 * r : 90 + 50 * r] for r in range(4)], changes[240:]]
    for group in groups:
        for start in range(0, len(group), 10):
            batch = group[start : start + 10]
            statuses += [r.status_code for r in await asyncio.gather(*(call() for call in batch))]
    for pid in deleted_ids:
        statuses.append((await admin.delete(f"{ADMIN}/{pid}")).status_code)
    assert len(statuses) == 500
    assert sorted(set(statuses)) == [200, 201, 204], statuses

    platform.start_service("catalog")
    expected = await postgres_products(platform)
    assert platform.endpoints is not None
    es = AsyncElasticsearch(platform.endpoints.elasticsearch_url, request_timeout=10)
    try:
        last: dict[str, tuple[Any, ...]] = {}

        async def in_step() -> bool:
            nonlocal last
            try:
                last = await indexed_products(es)
            except Exception:  # ES busy, or the index being created: poll again
                return False
            return last == expected

        try:
            await until(in_step, deadline_s=180)
        except AssertionError:
            missing = set(expected) - set(last)
            extra = set(last) - set(expected)
            wrong = {k for k in set(expected) & set(last) if expected[k] != last[k]}
            raise AssertionError(
                f"index differs: {len(missing)} missing, {len(extra)} extra, {len(wrong)} wrong"
            ) from None
    finally:
        await es.close()

    async def ready() -> bool:
        try:
            return (await client.get("/health/catalog")).status_code == 200
        except httpx.HTTPError:
            return False

    await until(ready, deadline_s=60)
    body = await search(client, brand=brand, size=100, sort="price_asc")
    ours = {pid: row for pid, row in expected.items() if row[0].startswith(f"E2E-{tag}-")}
    assert body["total"] == len(ours) == 60 - 40 + 40
    assert {(i["id"], i["price"], i["available"]) for i in body["items"]} == {
        (pid, row[1], row[3] - row[4]) for pid, row in ours.items()
    }
