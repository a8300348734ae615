"""The whole platform behind nginx: every service ready, the edge rules hold."""

import asyncio

import httpx
import pytest

from storefront_stack.platform import Platform
from storefront_stack.topology import SERVICES

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("service", [s.name for s in SERVICES])
def test_every_service_is_ready_through_the_gateway(gateway: str, service: str) -> None:
    response = httpx.get(f"{gateway}/health/{service}")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert all(state == "ok" for state in response.json()["checks"].values())


@pytest.mark.parametrize("service", [s.name for s in SERVICES])
def test_every_service_publishes_its_docs_through_the_gateway(gateway: str, service: str) -> None:
    page = httpx.get(f"{gateway}/docs/{service}")
    assert page.status_code == 200
    assert f"/docs/{service}/openapi.json" in page.text
    schema = httpx.get(f"{gateway}/docs/{service}/openapi.json")
    assert schema.status_code == 200
    assert "/health/ready" in schema.json()["paths"]


@pytest.mark.parametrize(
    "path",
    [
        "/internal/inventory/reserve",
        "/internal/notifications/otp",
        "//internal/inventory/reserve",
        "/%69nternal/inventory/reserve",
        "/api/../internal/inventory/release",
    ],
)
def test_internal_routes_are_refused_at_the_edge(gateway: str, path: str) -> None:
    response = httpx.post(f"{gateway}{path}", json={"order_id": "x"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 404


def test_metrics_are_not_exposed(gateway: str) -> None:
    assert httpx.get(f"{gateway}/metrics").status_code == 404


def test_unknown_path_gets_problem_and_request_id(gateway: str) -> None:
    response = httpx.get(f"{gateway}/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "not_found"
    assert len(response.headers.get_list("x-request-id")) == 1


def test_service_404_keeps_the_callers_request_id(gateway: str) -> None:
    response = httpx.get(
        f"{gateway}/api/v1/products/search/nope", headers={"X-Request-ID": "e2e-req-0001"}
    )
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "e2e-req-0001"
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_auth_rate_limit_answers_429_problem_under_a_burst(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        responses = await asyncio.gather(
            *(
                client.post("/api/v1/auth/otp/send", json={"phone": "+15550000000"})
                for _ in range(150)
            )
        )
    limited = [r for r in responses if r.status_code == 429]
    # Two layers limit: nginx's zone per client IP ("rate_limited") and auth's own
    # per-phone limit and cooldown ("otp_rate_limited", "otp_cooldown"); all of them
    # answer a problem with Retry-After.
    by_gateway = [r for r in limited if r.json()["code"] == "rate_limited"]
    assert by_gateway, "a burst of 150 must trip the gateway's auth zone"
    for response in limited:
        assert int(response.headers["retry-after"]) > 0
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] in {"rate_limited", "otp_rate_limited", "otp_cooldown"}


def test_https_serves_hsts_and_security_headers(platform: Platform) -> None:
    assert platform.endpoints is not None
    url = f"https://localhost:{platform.endpoints.gateway_https_port}/health/auth"
    response = httpx.get(url, verify=False)  # noqa: S501 (self-signed local certificate)
    assert response.status_code == 200
    assert "max-age" in response.headers["strict-transport-security"]
    assert response.headers["x-content-type-options"] == "nosniff"


SECURITY_HEADERS = ("x-content-type-options", "x-frame-options", "content-security-policy")


def _problem_from_the_edge(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["type"].startswith("https://storefront.dev/problems/")
    assert response.headers.get_list("x-request-id") == [body["request_id"]]
    for name in SECURITY_HEADERS:
        assert name in response.headers, name


def test_a_preflight_from_a_foreign_origin_is_a_403_problem(
    platform: Platform, gateway: str
) -> None:
    assert platform.endpoints is not None
    own_origin = f"http://localhost:{platform.endpoints.gateway_http_port}"
    preflight = {"Access-Control-Request-Method": "POST"}
    refused = httpx.options(
        f"{gateway}/api/v1/auth/otp/send",
        headers={"Origin": "https://evil.example", **preflight},
    )
    _problem_from_the_edge(refused, 403, "cors_preflight_refused")
    assert "access-control-allow-origin" not in refused.headers
    allowed = httpx.options(
        f"{gateway}/api/v1/auth/otp/send",
        headers={"Origin": own_origin, **preflight},
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == own_origin


def test_nginx_refusals_are_problems(gateway: str) -> None:
    _problem_from_the_edge(
        httpx.request("TRACE", f"{gateway}/api/v1/users/me"), 405, "method_not_allowed"
    )
    _problem_from_the_edge(
        httpx.get(f"{gateway}/api/v1/products/search", headers={"X-Big": "a" * 40_000}),
        431,
        "request_header_too_large",
    )
    _problem_from_the_edge(httpx.get(f"{gateway}/admin/nope.js"), 404, "not_found")


def test_a_forged_host_never_reaches_a_redirect(gateway: str) -> None:
    response = httpx.get(f"{gateway}/admin", headers={"Host": "evil.example"})
    assert response.status_code == 301
    assert response.headers["location"] == "/admin/"


def test_the_sentry_stand_in_is_served_under_sandbox(gateway: str) -> None:
    """Error reports of the services land in the stand-in; a developer reads them here."""
    response = httpx.get(f"{gateway}/sandbox/sentry/events")
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["events"], list)
    assert set(body) == {"events", "other_items"}
