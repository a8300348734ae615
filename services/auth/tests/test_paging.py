"""Auth's list routes page through the kit's ``Paging``: one 422 shape for a bad size."""

from typing import Any

import pytest

from .conftest import Auth, login_as, problem

USERS = "/api/v1/admin/users"
AUDIT = "/api/v1/admin/audit"


def paging_problem(response: Any, name: str) -> dict[str, Any]:
    """The kit's one answer to a page size out of bounds: a request validation problem."""
    body = problem(response, 422, "validation_error")
    assert body["title"] == "Request validation failed"
    assert body["detail"] == "The request does not match the schema."
    assert [error["loc"] for error in body["errors"]] == [["query", name]]
    return body


@pytest.mark.parametrize(
    ("path", "name"), [(USERS, "size"), (AUDIT, "limit")], ids=["users", "audit"]
)
async def test_a_page_size_out_of_bounds_is_the_one_validation_problem(
    auth: Auth, path: str, name: str
) -> None:
    moderator, _ = await login_as(auth, "moderator")
    maximum = auth.settings.page_size_max
    too_large = paging_problem(
        await auth.client.get(path, params={name: maximum + 1}, headers=moderator), name
    )
    too_small = paging_problem(
        await auth.client.get(path, params={name: 0}, headers=moderator), name
    )
    assert too_large["errors"][0]["type"] == "less_than_equal"
    assert str(maximum) in too_large["errors"][0]["msg"]
    assert too_small["errors"][0]["type"] == "greater_than_equal"
    assert set(too_large) == set(too_small)
    # The maximum itself is a page, and so is no size at all (the settings' default).
    largest = await auth.client.get(path, params={name: maximum}, headers=moderator)
    assert largest.status_code == 200, largest.text
    assert (await auth.client.get(path, headers=moderator)).status_code == 200
