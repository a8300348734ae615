"""Internal routes: only service tokens for the inventory audience from the routes' callers."""

import uuid
from typing import Any

import pytest

from storefront_stack.checks import problem

INTERNAL_CALLS = [
    ("POST", "/internal/inventory/reserve"),
    ("POST", "/internal/inventory/release"),
    ("POST", "/internal/inventory/commit"),
    ("POST", "/internal/inventory/restock"),
    ("GET", "/internal/inventory/products/export"),
    ("GET", "/internal/inventory/products/SOME-SKU"),
]


@pytest.mark.parametrize(("method", "path"), INTERNAL_CALLS)
async def test_internal_routes_refuse_anything_but_an_inventory_service_token(
    inventory: Any, method: str, path: str
) -> None:
    product = await inventory.create_product(on_hand=3)
    body = {"order_id": str(uuid.uuid4()), "items": [{"sku": product["sku"], "qty": 1}]}
    if not path.endswith("reserve"):
        body.pop("items")
    keys = inventory.keys
    refused = {
        "missing": {},
        "admin user token": inventory.admin,
        "service token for catalog": {
            "Authorization": f"Bearer {keys.service_token('orders', audience='catalog')}"
        },
        "garbage": {"Authorization": "Bearer not.a.token"},
        "basic auth": {"Authorization": "Basic b3JkZXJzOnB3"},
    }
    for label, headers in refused.items():
        kwargs: dict[str, Any] = {"headers": headers}
        if method == "POST":
            kwargs["json"] = body
        response = await inventory.client.request(method, path, **kwargs)
        assert response.status_code == 401, (label, response.text)
        problem_body = response.json()
        assert problem_body["code"] in {"not_authenticated", "invalid_token"}, label
        assert response.headers["www-authenticate"].startswith("Bearer"), label
    assert await inventory.stock(product["sku"]) == {"on_hand": 3, "reserved": 0, "version": 1}


#: Who may call each internal route; every other service is a 403.
ALLOWED = {
    "/internal/inventory/reserve": {"orders"},
    "/internal/inventory/release": {"orders"},
    "/internal/inventory/commit": {"orders"},
    "/internal/inventory/restock": {"orders"},
    "/internal/inventory/products/export": {"catalog"},
    "/internal/inventory/products/SOME-SKU": {"catalog", "orders"},
}
SERVICES = ["auth", "catalog", "orders", "notifications", "ws-gateway"]


@pytest.mark.parametrize(("method", "path"), INTERNAL_CALLS)
async def test_each_route_lets_in_its_callers_and_forbids_every_other_service(
    inventory: Any, method: str, path: str
) -> None:
    product = await inventory.create_product(on_hand=3)
    body: dict[str, Any] = {"order_id": str(uuid.uuid4())}
    for caller in SERVICES:
        headers = {"Authorization": f"Bearer {inventory.keys.service_token(caller)}"}
        kwargs: dict[str, Any] = {"headers": headers}
        if method == "POST":
            kwargs["json"] = body  # no items: past the caller check, a 422 (or a 404)
        response = await inventory.client.request(method, path, **kwargs)
        if caller in ALLOWED[path]:
            assert response.status_code in {200, 404, 422}, (caller, response.text)
        else:
            detail = problem(response, 403, "caller_not_allowed")["detail"]
            assert caller in detail
    assert await inventory.stock(product["sku"]) == {"on_hand": 3, "reserved": 0, "version": 1}


async def test_a_service_token_gets_in_even_with_a_bad_body_it_gets_422(inventory: Any) -> None:
    response = await inventory.client.post(
        "/internal/inventory/reserve", json={"order_id": "x"}, headers=inventory.service
    )
    assert problem(response, 422, "validation_error")["errors"]
    missing = await inventory.client.post("/internal/inventory/reserve", json={"order_id": "x"})
    problem(missing, 401, "not_authenticated")


async def test_product_by_sku_for_services(inventory: Any) -> None:
    product = await inventory.create_product(on_hand=6)
    await inventory.reserve([{"sku": product["sku"], "qty": 2}])

    found = await inventory.client.get(
        f"/internal/inventory/products/{product['sku']}", headers=inventory.service
    )
    missing = await inventory.client.get(
        "/internal/inventory/products/NOPE-404", headers=inventory.service
    )
    malformed = await inventory.client.get(
        "/internal/inventory/products/bad%20sku", headers=inventory.service
    )

    assert found.status_code == 200
    assert found.json() == {**product, "stock": {"on_hand": 6, "reserved": 2, "available": 4}}
    assert problem(missing, 404, "product_not_found")["sku"] == "NOPE-404"
    problem(malformed, 422, "validation_error")


async def test_export_pages_through_every_live_product_in_sku_order(
    inventory: Any, sku_factory: Any
) -> None:
    made = [await inventory.create_product(sku=sku_factory("EXP"), on_hand=i) for i in range(5)]
    deleted = await inventory.create_product(sku=sku_factory("EXP"))
    await inventory.client.delete(
        f"/api/v1/admin/products/{deleted['id']}", headers=inventory.admin
    )

    seen: list[dict[str, Any]] = []
    after: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if after:
            params["after"] = after
        response = await inventory.client.get(
            "/internal/inventory/products/export", params=params, headers=inventory.catalog
        )
        assert response.status_code == 200, response.text
        page = response.json()
        seen.extend(page["items"])
        pages += 1
        after = page["next_after"]
        if after is None:
            break
        assert after == page["items"][-1]["sku"]

    ours = [p for p in seen if p["sku"].startswith("EXP-")]
    assert [p["sku"] for p in ours] == sorted(p["sku"] for p in made)
    assert deleted["sku"] not in {p["sku"] for p in seen}
    assert [p["sku"] for p in seen] == sorted(p["sku"] for p in seen)
    assert pages >= 3
    by_sku = {p["sku"]: p for p in ours}
    for product in made:
        assert by_sku[product["sku"]] == product


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"after": "bad sku"}])
async def test_export_refuses_absurd_parameters(inventory: Any, params: dict[str, Any]) -> None:
    response = await inventory.client.get(
        "/internal/inventory/products/export", params=params, headers=inventory.catalog
    )
    assert problem(response, 422, "validation_error")["detail"]
