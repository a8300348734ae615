"""A query string taken as one model answers and documents exactly as FastAPI's own
per-parameter declaration does: the same values, the same 422 problems, the same
parameters in the OpenAPI schema."""

from collections.abc import AsyncIterator
from typing import Annotated, Any, ClassVar, Literal

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from storefront_kit.query import query_model, query_model_openapi
from storefront_kit.settings import ServiceSettings

from .demo_service import demo_app


class DemoSettings(ServiceSettings):
    service_name: ClassVar[str] = "query-demo"


Colour = Literal["red", "green"]


class Filters(BaseModel):
    model_config = ConfigDict(extra="ignore")

    q: str | None = Field(default=None, max_length=5, description="Words.", examples=["cat"])
    colour: Colour = "red"
    min_price: int | None = Field(default=None, ge=0, le=100)
    in_stock: bool | None = None
    page: int = Field(default=1, ge=1, le=10)


def build_app() -> FastAPI:
    router = APIRouter()

    @router.get("/as-model", openapi_extra=query_model_openapi(Filters))
    async def as_model(filters: Annotated[Filters, Depends(query_model(Filters))]) -> Filters:
        return filters

    @router.get("/as-parameters")
    async def as_parameters(
        q: Annotated[str | None, Query(max_length=5, description="Words.", examples=["cat"])] = (
            None
        ),
        colour: Colour = "red",
        min_price: Annotated[int | None, Query(ge=0, le=100)] = None,
        in_stock: bool | None = None,
        page: Annotated[int, Query(ge=1, le=10)] = 1,
    ) -> Filters:
        return Filters(q=q, colour=colour, min_price=min_price, in_stock=in_stock, page=page)

    return demo_app(DemoSettings(), router)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as c:
        yield c


QUERIES = [
    "",
    "q=dog&colour=green&min_price=7&in_stock=true&page=3",
    "in_stock=0&in_stock=yes",  # given twice: the last one counts
    "min_price=007&unknown=1",
    "q=toolong&colour=blue&min_price=-1&page=0",
    "min_price=abc&in_stock=maybe",
    "page=11",
]


@pytest.mark.parametrize("query", QUERIES)
async def test_the_model_answers_as_the_declared_parameters_do(
    client: httpx.AsyncClient, query: str
) -> None:
    model = await client.get(f"/as-model?{query}")
    parameters = await client.get(f"/as-parameters?{query}")
    assert model.status_code == parameters.status_code
    expected: Any = parameters.json()
    if parameters.status_code == 422:
        # The problem itself carries the request path and id; its errors must agree.
        assert model.headers["content-type"] == "application/problem+json"
        assert model.json()["code"] == "validation_error"
        assert sorted(model.json()["errors"], key=str) == sorted(expected["errors"], key=str)
    else:
        assert model.json() == expected


async def test_refused_values_are_located_in_the_query(client: httpx.AsyncClient) -> None:
    response = await client.get("/as-model?colour=blue&page=0")
    assert response.status_code == 422
    assert {tuple(e["loc"]) for e in response.json()["errors"]} == {
        ("query", "colour"),
        ("query", "page"),
    }


async def test_the_schema_documents_each_parameter_as_fastapi_would(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    model = {p["name"]: p for p in paths["/as-model"]["get"]["parameters"]}
    declared = {p["name"]: p for p in paths["/as-parameters"]["get"]["parameters"]}
    assert model.keys() == declared.keys() == {"q", "colour", "min_price", "in_stock", "page"}
    for name, parameter in declared.items():
        documented = model[name]
        assert documented["in"] == "query"
        assert documented["required"] == parameter["required"] is False
        assert documented.get("description") == parameter.get("description")
        schema, expected = documented["schema"], parameter["schema"]
        # FastAPI titles each parameter's schema; the constraints are what clients use.
        for key in ("maximum", "minimum", "maxLength", "enum", "default", "type", "anyOf"):
            assert _without_titles(schema.get(key)) == _without_titles(expected.get(key)), (
                name,
                key,
            )
    assert [e["value"] for e in model["q"]["examples"].values()] == ["cat"]


def _without_titles(value: Any) -> Any:
    if isinstance(value, list):
        return [_without_titles(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_titles(v) for k, v in value.items() if k != "title"}
    return value


def test_a_nested_model_cannot_be_a_query_string() -> None:
    class Nested(BaseModel):
        filters: Filters

    with pytest.raises(ValueError, match="scalars"):
        query_model_openapi(Nested)
