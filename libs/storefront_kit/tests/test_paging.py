"""The kit's page dependency: defaults and maxima from the service, one 422 shape."""

from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from storefront_kit.paging import (
    InvalidPaging,
    PageLimits,
    Paging,
    check_page_size,
    paging_dependency,
)
from storefront_kit.problems import install_problem_handlers


async def _limits(request: Request) -> PageLimits:
    # As a service does: its limits from its own state (here, what the test put there).
    limits: PageLimits = request.app.state.limits
    return limits


def _app(default: int = 20, maximum: int = 100) -> FastAPI:
    app = FastAPI()
    app.state.limits = PageLimits(default=default, maximum=maximum)
    install_problem_handlers(app)
    Cursor = Annotated[Paging, Depends(paging_dependency(_limits))]
    Numbered = Annotated[Paging, Depends(paging_dependency(_limits, name="size", numbered=True))]

    @app.get("/cursor")
    async def cursor(paging: Cursor, before: str | None = None) -> dict[str, Any]:
        return {"size": paging.size, "page": paging.page, "before": before}

    @app.get("/numbered")
    async def numbered(paging: Numbered) -> dict[str, Any]:
        return {"size": paging.size, "page": paging.page, "offset": paging.offset}

    return app


async def _get(app: FastAPI, path: str, **params: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit") as client:
        return await client.get(path, params=params)


async def test_the_service_default_applies_and_a_size_up_to_the_maximum_is_kept() -> None:
    app = _app(default=7, maximum=30)
    assert (await _get(app, "/cursor")).json() == {"size": 7, "page": 1, "before": None}
    assert (await _get(app, "/cursor", limit=30, before="x")).json()["size"] == 30
    body = (await _get(app, "/numbered", size=5, page=3)).json()
    assert body == {"size": 5, "page": 3, "offset": 10}
    assert (await _get(app, "/numbered")).json() == {"size": 7, "page": 1, "offset": 0}


@pytest.mark.parametrize(
    ("path", "params", "name", "kind"),
    [
        ("/cursor", {"limit": 31}, "limit", "less_than_equal"),
        ("/cursor", {"limit": 0}, "limit", "greater_than_equal"),
        ("/cursor", {"limit": -4}, "limit", "greater_than_equal"),
        ("/numbered", {"size": 1000}, "size", "less_than_equal"),
        ("/numbered", {"size": 0}, "size", "greater_than_equal"),
        ("/numbered", {"page": 0}, "page", "greater_than_equal"),
    ],
)
async def test_a_size_out_of_bounds_is_the_one_validation_problem(
    path: str, params: dict[str, Any], name: str, kind: str
) -> None:
    response = await _get(_app(maximum=30), path, **params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    # The very shape of a request that fails its schema, whichever bound was crossed.
    assert (body["code"], body["title"], body["detail"]) == (
        "validation_error",
        "Request validation failed",
        "The request does not match the schema.",
    )
    assert [(e["loc"], e["type"]) for e in body["errors"]] == [(["query", name], kind)]
    assert all(set(e) == {"loc", "msg", "type"} for e in body["errors"])


async def test_too_large_and_too_small_answer_alike_but_for_the_error_entry() -> None:
    app = _app(maximum=30)
    large = (await _get(app, "/cursor", limit=31)).json()
    small = (await _get(app, "/cursor", limit=0)).json()
    assert set(large) == set(small)
    assert large["errors"][0]["msg"] == "Input should be less than or equal to 30"


def test_check_page_size_outside_a_dependency() -> None:
    assert check_page_size(100, maximum=100, name="size") == 100
    with pytest.raises(InvalidPaging) as refused:
        check_page_size(101, maximum=100, name="size")
    assert refused.value.status_code == 422
    assert refused.value.extra["errors"][0]["loc"] == ["query", "size"]


def test_limits_refuse_a_default_above_the_maximum() -> None:
    with pytest.raises(ValueError, match="1 <= default <= maximum"):
        PageLimits(default=50, maximum=10)
    with pytest.raises(ValueError, match="1 <= default <= maximum"):
        PageLimits(default=0, maximum=10)


def test_the_size_parameter_keeps_its_public_name_in_openapi() -> None:
    schema = _app().openapi()
    cursor = {p["name"] for p in schema["paths"]["/cursor"]["get"]["parameters"]}
    numbered = {p["name"] for p in schema["paths"]["/numbered"]["get"]["parameters"]}
    assert cursor == {"limit", "before"}
    assert numbered == {"page", "size"}
