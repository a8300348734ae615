"""Admin product API: CRUD with ETags, optimistic PATCH, soft delete, audited stock, RBAC."""

import asyncio
import uuid
from typing import Any

import pytest

from storefront_stack.checks import problem

BASE = "/api/v1/admin/products"


async def test_create_answers_201_with_location_etag_and_publishes_the_product(
    inventory: Any, sku_factory: Any
) -> None:
    sku = sku_factory("SHIRT")
    body = {
        "sku": sku,
        "name": "  Red shirt  ",
        "description": "Organic cotton.",
        "brand": "Acme",
        "category": "apparel",
        "attributes": {"color": "red", "size": "M", "organic": True, "weight_g": 180},
        "price": 1999,
        "currency": "EUR",
        "images": ["https://img.example/red.jpg"],
        "initial_stock": 7,
    }

    response = await inventory.client.post(BASE, json=body, headers=inventory.admin)

    assert response.status_code == 201, response.text
    product = response.json()
    assert response.headers["location"] == f"{BASE}/{product['id']}"
    assert response.headers["etag"] == '"1"'
    assert product["sku"] == sku
    assert product["name"] == "Red shirt"
    assert product["attributes"] == body["attributes"]
    assert product["price"] == 1999
    assert product["active"] is True
    assert product["version"] == 1
    assert product["stock"] == {"on_hand": 7, "reserved": 0, "available": 7}
    assert uuid.UUID(product["id"]).version == 7
    events = await inventory.outbox("product.upserted", sku)
    assert len(events) == 1
    assert events[0]["type"] == "product.upserted"
    assert events[0]["source"] == "inventory"
    assert events[0]["data"] == product
    audit = await inventory.client.get(
        f"{BASE}/{product['id']}/stock/adjustments", headers=inventory.moderator
    )
    assert [(a["delta"], a["reason"], a["actor"]) for a in audit.json()] == [
        (7, "initial stock", "admin-1")
    ]


async def test_creating_an_existing_sku_is_a_conflict(inventory: Any) -> None:
    product = await inventory.create_product()
    again = await inventory.client.post(
        BASE,
        json={"sku": product["sku"], "name": "x", "brand": "b", "category": "c",
              "price": 1, "currency": "EUR"},
        headers=inventory.admin,
    )  # fmt: skip
    body = problem(again, 409, "sku_taken")
    assert body["sku"] == product["sku"]
    assert (
        await inventory.scalar(
            "SELECT count(*) FROM product WHERE sku = :sku", {"sku": product["sku"]}
        )
        == 1
    )


async def test_get_returns_the_product_with_its_etag(inventory: Any) -> None:
    product = await inventory.create_product(on_hand=3)
    response = await inventory.client.get(f"{BASE}/{product['id']}", headers=inventory.moderator)
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert response.json() == product
    missing = await inventory.client.get(f"{BASE}/{uuid.uuid4()}", headers=inventory.moderator)
    assert problem(missing, 404, "product_not_found")["detail"].startswith("No product")


async def test_patch_needs_if_match_and_refuses_stale_versions(inventory: Any) -> None:
    product = await inventory.create_product(price=1000)
    url = f"{BASE}/{product['id']}"

    blind = await inventory.client.patch(url, json={"price": 900}, headers=inventory.admin)
    assert "If-Match" in problem(blind, 428, "precondition_required")["detail"]

    change = {"price": 900, "name": "Cheaper", "attributes": {"color": "blue"}, "images": []}
    fresh = await inventory.client.patch(
        url, json=change, headers={**inventory.admin, "If-Match": '"1"'}
    )
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["attributes"] == {"color": "blue"}
    assert fresh.json()["images"] == []
    assert fresh.json()["brand"] == product["brand"]
    assert fresh.json()["updated_at"] > product["updated_at"]
    assert fresh.headers["etag"] == '"2"'
    assert fresh.json()["price"] == 900
    assert fresh.json()["name"] == "Cheaper"
    assert fresh.json()["version"] == 2
    assert fresh.json()["sku"] == product["sku"]

    stale = await inventory.client.patch(
        url, json={"price": 800}, headers={**inventory.admin, "If-Match": '"1"'}
    )
    problem(stale, 412, "precondition_failed")
    garbage = await inventory.client.patch(
        url, json={"price": 800}, headers={**inventory.admin, "If-Match": "nonsense"}
    )
    problem(garbage, 412, "precondition_failed")
    current = await inventory.client.get(url, headers=inventory.admin)
    assert current.json()["price"] == 900
    assert current.json()["version"] == 2
    events = await inventory.outbox("product.upserted", product["sku"])
    assert [e["data"]["version"] for e in events] == [1, 2]


async def test_concurrent_patches_with_the_same_etag_let_exactly_one_win(inventory: Any) -> None:
    product = await inventory.create_product(price=1000)
    url = f"{BASE}/{product['id']}"

    results = await asyncio.gather(
        *(
            inventory.client.patch(
                url, json={"price": 1000 + i}, headers={**inventory.admin, "If-Match": '"1"'}
            )
            for i in range(1, 11)
        )
    )

    winners = [r for r in results if r.status_code == 200]
    assert len(winners) == 1
    for loser in (r for r in results if r.status_code != 200):
        problem(loser, 412, "precondition_failed")
    current = (await inventory.client.get(url, headers=inventory.admin)).json()
    assert current["price"] == winners[0].json()["price"]
    assert current["version"] == 2


async def test_patch_refuses_unknown_fields_nulls_sku_changes_and_empty_bodies(
    inventory: Any,
) -> None:
    product = await inventory.create_product(price=1000)
    url = f"{BASE}/{product['id']}"
    headers = {**inventory.admin, "If-Match": '"1"'}
    for body in ({}, {"sku": "NEW"}, {"name": None}, {"price": -1}, {"price": "10"},
                 {"currency": "eur"}, {"colour": "red"}):  # fmt: skip
        response = await inventory.client.patch(url, json=body, headers=headers)
        assert problem(response, 422, "validation_error")["errors"], body
    current = (await inventory.client.get(url, headers=inventory.admin)).json()
    assert current == product


async def test_patch_of_a_missing_product_is_404(inventory: Any) -> None:
    response = await inventory.client.patch(
        f"{BASE}/{uuid.uuid4()}", json={"price": 1}, headers={**inventory.admin, "If-Match": '"1"'}
    )
    problem(response, 404, "product_not_found")


async def test_delete_is_soft_and_publishes_product_deleted(inventory: Any) -> None:
    product = await inventory.create_product(on_hand=4)
    url = f"{BASE}/{product['id']}"

    stale = await inventory.client.delete(url, headers={**inventory.admin, "If-Match": '"9"'})
    problem(stale, 412, "precondition_failed")
    deleted = await inventory.client.delete(url, headers=inventory.admin)
    assert deleted.status_code == 204
    assert deleted.content == b""

    gone = await inventory.client.get(url, headers=inventory.admin)
    problem(gone, 404, "product_not_found")
    problem(await inventory.client.delete(url, headers=inventory.admin), 404, "product_not_found")
    assert await inventory.scalar(
        "SELECT deleted_at IS NOT NULL AND NOT active FROM product WHERE id = :id",
        {"id": uuid.UUID(product["id"])},
    )
    events = await inventory.outbox("product.deleted", product["sku"])
    assert [e["data"] for e in events] == [{"id": product["id"], "sku": product["sku"]}]
    refused = await inventory.reserve([{"sku": product["sku"], "qty": 1}])
    assert problem(refused, 409, "product_unavailable")["skus"] == [product["sku"]]


async def test_list_filters_and_pages(inventory: Any, sku_factory: Any) -> None:
    brand = f"Brand-{uuid.uuid4().hex[:8]}"
    made = []
    for i in range(5):
        made.append(
            await inventory.create_product(
                sku=sku_factory("LST"),
                name=f"Lamp {i} 100%_cotton" if i == 0 else f"Lamp {i}",
                brand=brand,
                category="lighting" if i % 2 else "decor",
                active=i != 4,
            )
        )

    first = await inventory.client.get(
        BASE, params={"brand": brand, "size": 2}, headers=inventory.moderator
    )
    second = await inventory.client.get(
        BASE, params={"brand": brand, "size": 2, "page": 2}, headers=inventory.moderator
    )
    lighting = await inventory.client.get(
        BASE, params={"brand": brand, "category": "lighting"}, headers=inventory.moderator
    )
    inactive = await inventory.client.get(
        BASE, params={"brand": brand, "active": "false"}, headers=inventory.moderator
    )
    literal = await inventory.client.get(
        BASE, params={"brand": brand, "q": "100%_c"}, headers=inventory.moderator
    )
    by_sku = await inventory.client.get(
        BASE, params={"q": made[3]["sku"].lower()}, headers=inventory.moderator
    )

    newest_first = [p["sku"] for p in reversed(made)]
    assert first.json()["total"] == 5
    assert (first.json()["page"], first.json()["size"]) == (1, 2)
    assert [p["sku"] for p in first.json()["items"]] == newest_first[:2]
    assert [p["sku"] for p in second.json()["items"]] == newest_first[2:4]
    assert {p["sku"] for p in lighting.json()["items"]} == {made[1]["sku"], made[3]["sku"]}
    assert [p["sku"] for p in inactive.json()["items"]] == [made[4]["sku"]]
    assert [p["sku"] for p in literal.json()["items"]] == [made[0]["sku"]]
    assert [p["sku"] for p in by_sku.json()["items"]] == [made[3]["sku"]]
    assert by_sku.json()["items"][0]["stock"] == {"on_hand": 10, "reserved": 0, "available": 10}


@pytest.mark.parametrize(
    "params",
    [{"size": 101}, {"size": 0}, {"page": 0}, {"page": "x"}, {"active": "maybe"},
     {"q": "x" * 101}, {"q": ""}],
)  # fmt: skip
async def test_list_refuses_absurd_paging_and_filters(
    inventory: Any, params: dict[str, Any]
) -> None:
    response = await inventory.client.get(BASE, params=params, headers=inventory.moderator)
    body = problem(response, 422, "validation_error")
    assert body["detail"]


async def test_stock_adjustments_are_audited_and_never_undercut_reservations(
    inventory: Any,
) -> None:
    product = await inventory.create_product(on_hand=5)
    url = f"{BASE}/{product['id']}/stock"
    await inventory.reserve([{"sku": product["sku"], "qty": 3}])

    added = await inventory.adjust_stock(product, 10, "delivery #1")
    removed = await inventory.adjust_stock(product, -12, "damaged")
    too_much = await inventory.adjust_stock(product, -1, "lost")

    assert added.status_code == 200, added.text
    assert added.json() == {
        "sku": product["sku"], "product_id": product["id"], "on_hand": 15, "reserved": 3,
        "available": 12, "version": 3,
    }  # fmt: skip
    assert removed.json()["on_hand"] == 3
    body = problem(too_much, 409, "stock_below_reserved")
    assert (body["on_hand"], body["reserved"]) == (3, 3)
    assert await inventory.stock(product["sku"]) == {"on_hand": 3, "reserved": 3, "version": 4}
    audit = await inventory.client.get(f"{url}/adjustments", headers=inventory.moderator)
    assert [(a["delta"], a["reason"], a["on_hand_after"]) for a in audit.json()] == [
        (-12, "damaged", 3),
        (10, "delivery #1", 15),
        (5, "initial stock", 5),
    ]
    events = await inventory.outbox("stock.changed", product["sku"])
    assert [e["data"]["on_hand"] for e in events] == [5, 5, 15, 3]


@pytest.mark.parametrize(
    "body",
    [{"delta": 0, "reason": "x"}, {"delta": 1}, {"delta": 1, "reason": ""},
     {"delta": 1, "reason": "x" * 201}, {"delta": "1", "reason": "x"},
     {"delta": 10**10, "reason": "x"}, {"delta": 1, "reason": "x", "by": "me"}],
)  # fmt: skip
async def test_bad_stock_adjustments_are_422_and_change_nothing(
    inventory: Any, body: dict[str, Any]
) -> None:
    product = await inventory.create_product(on_hand=5)
    response = await inventory.client.post(
        f"{BASE}/{product['id']}/stock", json=body, headers=inventory.admin
    )
    assert problem(response, 422, "validation_error")["errors"]
    assert await inventory.stock(product["sku"]) == {"on_hand": 5, "reserved": 0, "version": 1}


@pytest.mark.parametrize(
    "override",
    [{"price": -1}, {"price": 1.5}, {"price": 10**13}, {"currency": "euro"},
     {"sku": "has space"}, {"sku": "x" * 65}, {"name": ""}, {"name": "x" * 201},
     {"images": ["ftp://x"]}, {"images": ["https://x"] * 21},
     {"attributes": {f"k{i}": i for i in range(51)}}, {"attributes": {"k": {"nested": 1}}},
     {"initial_stock": -1}, {"active": "yes"}, {"unknown": 1}],
)  # fmt: skip
async def test_bad_products_are_422_and_nothing_is_created(
    inventory: Any, sku_factory: Any, override: dict[str, Any]
) -> None:
    body = {"sku": sku_factory("BAD"), "name": "n", "brand": "b", "category": "c",
            "price": 1, "currency": "EUR", **override}  # fmt: skip
    response = await inventory.client.post(BASE, json=body, headers=inventory.admin)
    assert problem(response, 422, "validation_error")["errors"]
    assert (
        await inventory.scalar(
            "SELECT count(*) FROM product WHERE sku = :sku", {"sku": body["sku"]}
        )
        == 0
    )


async def test_moderators_read_but_only_admins_write(inventory: Any) -> None:
    product = await inventory.create_product()
    url = f"{BASE}/{product['id']}"
    mod = inventory.moderator
    customer = {"Authorization": f"Bearer {inventory.keys.user_token('customer')}"}

    assert (await inventory.client.get(url, headers=mod)).status_code == 200
    assert (await inventory.client.get(BASE, headers=mod)).status_code == 200
    writes = [
        inventory.client.post(BASE, json={}, headers=mod),
        inventory.client.patch(url, json={"price": 1}, headers={**mod, "If-Match": '"1"'}),
        inventory.client.delete(url, headers=mod),
        inventory.client.post(f"{url}/stock", json={"delta": 1, "reason": "x"}, headers=mod),
    ]
    for response in await asyncio.gather(*writes):
        problem(response, 403, "forbidden")
    problem(await inventory.client.get(url, headers=customer), 403, "forbidden")
    problem(await inventory.client.get(url), 401, "not_authenticated")
    service = await inventory.client.get(url, headers=inventory.service)
    assert service.status_code == 401
    assert (await inventory.client.get(url, headers=inventory.admin)).json() == product


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "nul\u0000in a name"), ("description", "\u0000"), ("attributes", {"k": "a\u0000b"})],
)
async def test_a_value_postgresql_cannot_store_is_a_422_problem_not_a_500(
    inventory: Any, sku_factory: Any, field: str, value: Any
) -> None:
    body = {"sku": sku_factory("NUL"), "name": "x", "brand": "b", "category": "c",
            "price": 1, "currency": "EUR", field: value}  # fmt: skip

    response = await inventory.client.post(BASE, json=body, headers=inventory.admin)

    problem(response, 422, "value_not_storable")
    assert (
        await inventory.scalar(
            "SELECT count(*) FROM product WHERE sku = :sku", {"sku": body["sku"]}
        )
        == 0
    )


@pytest.mark.parametrize(
    ("path", "name", "caller"),
    [(BASE, "size", "moderator"), ("/internal/inventory/products/export", "limit", "catalog")],
    ids=["admin-list", "export"],
)
async def test_a_page_size_out_of_bounds_is_the_kits_one_problem(
    inventory: Any, path: str, name: str, caller: str
) -> None:
    headers = getattr(inventory, caller)
    settings = inventory.state.settings
    maximum = settings.page_size_max if name == "size" else settings.export_limit_max
    for size, kind in ((maximum + 1, "less_than_equal"), (0, "greater_than_equal")):
        response = await inventory.client.get(path, params={name: size}, headers=headers)
        body = problem(response, 422, "validation_error")
        assert body["title"] == "Request validation failed"
        assert [(e["loc"], e["type"]) for e in body["errors"]] == [(["query", name], kind)]
    largest = await inventory.client.get(path, params={name: maximum}, headers=headers)
    assert largest.status_code == 200, largest.text
