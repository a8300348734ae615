"""The shared app factory: problems, request ids, health, metrics, CORS and docs."""

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Annotated, ClassVar

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, Depends, FastAPI
from prometheus_client import REGISTRY
from pydantic import BaseModel, ConfigDict
from pydantic_settings import SettingsConfigDict

from jwt_core_lib import SigningKey, TokenClaims
from storefront_kit.errors import Conflict, NotFound, TooManyRequests
from storefront_kit.health import HealthCheck
from storefront_kit.security import MissingSecret, allow_callers, route_callers
from storefront_kit.settings import PlatformSettings, ServiceSettings
from storefront_stack.checks import problem

from .demo_service import demo_app


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore")
    service_name: ClassVar[str] = "demo"


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    qty: int


def _queued(service: str) -> float:
    return REGISTRY.get_sample_value("http_requests_queued", {"service": service}) or 0.0


class Gate:
    """Holds requests inside an endpoint until opened; counts how many are inside."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.inside = 0
        self.most_inside = 0


def build_app(
    *,
    healthy: bool = True,
    docs: bool = True,
    gate: Gate | None = None,
    max_concurrent_requests: int = 64,
    request_queue_timeout_s: float = 10.0,
    gc_freeze: bool = False,
) -> FastAPI:
    router = APIRouter()

    @router.get("/gated")
    async def gated() -> dict[str, int]:
        assert gate is not None
        gate.inside += 1
        gate.most_inside = max(gate.most_inside, gate.inside)
        try:
            await gate.opened.wait()
        finally:
            gate.inside -= 1
        return {"most_inside": gate.most_inside}

    @router.get("/missing")
    async def missing() -> None:
        raise NotFound("No such thing.", code="thing_not_found")

    @router.get("/conflict")
    async def conflict() -> None:
        raise Conflict("Already there.", existing_id="abc")

    @router.get("/slow-down")
    async def slow_down() -> None:
        raise TooManyRequests("Too many.", retry_after=7)

    @router.get("/crash")
    async def crash() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    @router.get("/os-error")
    async def os_error() -> None:
        raise ConnectionRefusedError("connect to 127.0.0.1:1 refused")

    @router.post("/items")
    async def create(item: Item) -> Item:
        return item

    async def ok() -> bool:
        return True

    async def down() -> bool:
        raise ConnectionError("nope")

    async def hangs() -> None:
        await asyncio.sleep(30)

    def checks(_: object) -> list[HealthCheck]:
        if healthy:
            return [HealthCheck("postgres", ok), HealthCheck("redis", ok)]
        return [HealthCheck("postgres", ok), HealthCheck("redis", down), HealthCheck("es", hangs)]

    settings = DemoSettings(
        platform=PlatformSettings(
            docs_enabled=docs, cors_allow_origins=["https://shop.example"], gc_freeze=gc_freeze
        ),
        max_concurrent_requests=max_concurrent_requests,
        request_queue_timeout_s=request_queue_timeout_s,
    )
    return demo_app(settings, router, checks=checks)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as c:
        yield c


async def test_app_error_renders_problem_with_its_status_and_code(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/missing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "thing_not_found"
    assert body["type"].endswith("/thing-not-found")
    assert body["detail"] == "No such thing."
    assert body["instance"] == "/missing"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_extra_problem_members_are_included(client: httpx.AsyncClient) -> None:
    body = (await client.get("/conflict")).json()
    assert body["status"] == 409
    assert body["existing_id"] == "abc"


async def test_rate_limited_problem_carries_retry_after(client: httpx.AsyncClient) -> None:
    response = await client.get("/slow-down")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"


async def test_unknown_route_is_a_problem_not_html(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    problem(response, 404, "not_found")


async def test_unhandled_exception_is_500_problem_without_traceback(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/crash")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert response.json()["code"] == "internal_error"
    assert response.headers["x-request-id"]


async def test_unreachable_dependency_is_503_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/os-error")
    problem(response, 503, "dependency_unavailable")
    assert response.headers["retry-after"] == "1"


async def test_validation_error_lists_fields_and_rejects_unknown_ones(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/items", json={"name": "x", "qty": "many", "admin": True})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    locations = {tuple(e["loc"]) for e in body["errors"]}
    assert ("body", "qty") in locations
    assert ("body", "admin") in locations
    assert "many" not in response.text  # input is not echoed back


async def test_request_id_is_kept_when_valid_and_generated_otherwise(
    client: httpx.AsyncClient,
) -> None:
    kept = await client.get("/health/live", headers={"X-Request-ID": "abc-12345678"})
    assert kept.headers["x-request-id"] == "abc-12345678"
    replaced = await client.get("/health/live", headers={"X-Request-ID": "<script>"})
    assert replaced.headers["x-request-id"] != "<script>"
    assert len(replaced.headers["x-request-id"]) == 32
    generated = await client.get("/health/live")
    assert generated.headers.get_list("x-request-id").__len__() == 1


async def test_ready_names_the_dependencies_that_are_down() -> None:
    transport = httpx.ASGITransport(app=build_app(healthy=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as c:
        response = await c.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["es", "redis"]
    assert body["checks"]["postgres"] == "ok"
    assert "redis" in body["detail"]


async def test_ready_is_ok_when_every_dependency_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/missing")
    text = (await client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/missing",service="demo",status="404"}' in text


async def test_cors_allows_only_configured_origins(client: httpx.AsyncClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = await client.options(
        "/items", headers={"Origin": "https://shop.example", **preflight}
    )
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    denied = await client.options("/items", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in denied.headers


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, "origin"),
        ({"Origin": "https://shop.example", "Access-Control-Request-Method": "TRACE"}, "method"),
        (
            {
                "Origin": "https://shop.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "X-Evil",
            },
            "headers",
        ),
    ],
)
async def test_a_refused_preflight_is_a_403_problem(
    client: httpx.AsyncClient, headers: dict[str, str], reason: str
) -> None:
    denied = await client.options("/items", headers={"X-Request-ID": "preflight-0001", **headers})
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"
    body = denied.json()
    assert (body["status"], body["code"]) == (403, "cors_preflight_refused")
    assert body["type"].endswith("/cors-preflight-refused")
    assert reason in body["detail"]
    assert body["request_id"] == denied.headers["x-request-id"] == "preflight-0001"
    assert "access-control-allow-origin" not in denied.headers


async def test_docs_page_points_at_the_gateway_openapi_path(client: httpx.AsyncClient) -> None:
    direct = await client.get("/docs")
    assert "'/openapi.json'" in direct.text or '"/openapi.json"' in direct.text
    behind = await client.get("/docs", headers={"X-Forwarded-Prefix": "/docs/demo"})
    assert "/docs/demo/openapi.json" in behind.text
    spoofed = await client.get("/docs", headers={"X-Forwarded-Prefix": "/x'><script>"})
    assert "<script>" not in spoofed.text.split("SwaggerUIBundle")[-1]
    schema = (await client.get("/openapi.json")).json()
    assert schema["info"]["title"] == "Demo"


async def test_docs_can_be_switched_off() -> None:
    transport = httpx.ASGITransport(app=build_app(docs=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as c:
        assert (await c.get("/docs")).status_code == 404
        assert (await c.get("/openapi.json")).status_code == 404


async def test_requests_beyond_the_admission_limit_wait_their_turn() -> None:
    gate = Gate()
    app = build_app(gate=gate, max_concurrent_requests=3)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as c:
        requests = [asyncio.create_task(c.get("/gated")) for _ in range(20)]
        async with asyncio.timeout(10):
            while gate.inside < 3 or _queued("demo") < 17:
                await asyncio.sleep(0.01)
        # Probes and metrics are never held back by the requests waiting their turn.
        assert (await c.get("/health/live")).status_code == 200
        metrics = (await c.get("/metrics")).text
        assert 'http_requests_queued{service="demo"} 17.0' in metrics
        gate.opened.set()
        responses = await asyncio.gather(*requests)
    assert [r.status_code for r in responses] == [200] * 20
    assert gate.most_inside == 3


async def test_a_request_that_waited_too_long_is_refused_before_any_work() -> None:
    gate = Gate()
    app = build_app(gate=gate, max_concurrent_requests=1, request_queue_timeout_s=0.2)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as c:
        first = asyncio.create_task(c.get("/gated"))
        while gate.inside < 1:
            await asyncio.sleep(0.01)
        refused = await c.get("/gated", headers={"X-Request-ID": "queued-request-1"})
        assert gate.most_inside == 1
        gate.opened.set()
        assert (await first).status_code == 200
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["code"] == "overloaded"
    assert body["request_id"] == "queued-request-1"


async def test_start_up_objects_are_frozen_out_of_the_cyclic_collector() -> None:
    gc.unfreeze()
    frozen = build_app(gc_freeze=True)
    try:
        async with frozen.router.lifespan_context(frozen):
            # The app, its routes and everything imported: far more than a handful.
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
    left_alone = build_app(gc_freeze=False)
    async with left_alone.router.lifespan_context(left_alone):
        assert gc.get_freeze_count() == 0


# --- service-to-service keys ----------------------------------------------------------------


def internal_app(settings: DemoSettings) -> FastAPI:
    router = APIRouter(prefix="/internal/demo")

    @router.post("/work")
    async def work(
        caller: Annotated[TokenClaims, Depends(allow_callers("orders"))],
    ) -> dict[str, str]:
        return {"caller": caller.issuer}

    return demo_app(settings, router)


@pytest.mark.parametrize("environment", ["development", "production"])
def test_a_service_without_its_own_key_refuses_to_start_outside_tests(environment: str) -> None:
    platform = PlatformSettings(environment=environment)  # type: ignore[arg-type]
    for placeholder in ("", "changeme"):
        with pytest.raises(MissingSecret, match="DEMO_SERVICE_TOKEN_KEY"):
            internal_app(DemoSettings(platform=platform, service_token_key=placeholder))


async def test_ready_only_when_some_caller_of_each_internal_route_has_a_key() -> None:
    orders, catalog = SigningKey.generate(), SigningKey.generate()
    platform = PlatformSettings(environment="development", gc_freeze=False)

    async def ready(callers: dict[str, list[str]]) -> httpx.Response:
        settings = DemoSettings(
            platform=platform,
            service_token_key=SigningKey.generate().to_pem(),
            service_token_callers=callers,
        )
        app = internal_app(settings)
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://demo") as c:
                return await c.get("/health/ready")

    for callers in ({}, {"catalog": [catalog.x]}):
        refused = await ready(callers)
        assert refused.status_code == 503, callers
        assert refused.json()["down"] == ["service_tokens"]
    accepted = await ready({"orders": [orders.x], "catalog": [catalog.x]})
    assert accepted.status_code == 200
    assert accepted.json()["checks"] == {"service_tokens": "ok"}


def test_every_internal_route_says_who_may_call_it() -> None:
    app = internal_app(DemoSettings(platform=PlatformSettings(environment="test")))
    assert route_callers(app) == {"POST /internal/demo/work": frozenset({"orders"})}


async def test_the_openapi_documents_every_error_as_the_problem_the_api_sends(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    bad_json = await client.post(
        "/items", content=b"{not json", headers={"content-type": "application/json"}
    )
    invalid = await client.post("/items", json={"name": "x"})

    create = schema["paths"]["/items"]["post"]["responses"]
    assert {"400", "422", "503"} <= set(create)
    assert create["422"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/ValidationProblem"}}
    }
    for status in ("400", "503"):
        assert create[status]["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    components = schema["components"]["schemas"]
    assert "HTTPValidationError" not in components
    assert "code" in components["Problem"]["required"]
    assert "errors" in components["ValidationProblem"]["properties"]
    # What the API sends is what the schema says.
    for answer in (bad_json, invalid):
        assert answer.status_code in (400, 422)
        assert answer.headers["content-type"] == "application/problem+json"
        assert str(answer.status_code) in create
    assert invalid.json()["errors"][0]["loc"] == ["body", "qty"]
    # Every operation may answer 503 (admission limit, a dependency down).
    for item in schema["paths"].values():
        for operation in item.values():
            assert "503" in operation["responses"]
