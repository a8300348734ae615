"""The order lists (a customer's own, staff's all) page through the kit's Paging: the
settings' default size, and for a size out of bounds the one 422 problem every list
route answers (docs/architecture.md, "Paging")."""

import pytest

from storefront_stack.checks import problem

from .conftest import Orders


@pytest.mark.parametrize(
    ("path", "roles"),
    [("/api/v1/orders", ()), ("/api/v1/admin/orders", ("moderator",))],
    ids=["customer", "staff"],
)
async def test_a_page_size_out_of_bounds_is_the_kits_one_problem(
    orders: Orders, path: str, roles: tuple[str, ...]
) -> None:
    headers = orders.keys.headers("buyer-paging", *roles)
    settings = orders.state.settings
    maximum = settings.page_size_max
    for size, kind in ((maximum + 1, "less_than_equal"), (0, "greater_than_equal")):
        response = await orders.client.get(path, params={"size": size}, headers=headers)
        body = problem(response, 422, "validation_error")
        assert body["title"] == "Request validation failed"
        assert [(e["loc"], e["type"]) for e in body["errors"]] == [(["query", "size"], kind)]
    largest = await orders.client.get(path, params={"size": maximum}, headers=headers)
    assert largest.status_code == 200, largest.text
    unasked = await orders.client.get(path, headers=headers)
    assert (unasked.json()["page"], unasked.json()["size"]) == (1, settings.page_size_default)
