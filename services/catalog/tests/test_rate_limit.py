"""The search's rate limit per client address: shared by replicas through Redis."""

import httpx

from catalog_service.settings import CatalogSettings

from .conftest import Serve, make_settings, state_of

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


async def _search(client: httpx.AsyncClient, *, ip: str) -> httpx.Response:
    return await client.get(
        "/api/v1/products/search", params={"q": "lamp"}, headers={"X-Real-IP": ip}
    )


def _limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["code"], body["status"], body["scope"]) == ("rate_limited", 429, "ip")
    assert body["type"].endswith("/rate-limited")
    assert 1 <= int(response.headers["retry-after"]) <= 60


async def test_searches_per_address_are_limited_and_other_clients_go_on(
    serve: Serve, settings: CatalogSettings, empty_index: str
) -> None:
    limited = settings.model_copy(update={"search_ip_rate_limit": "3/minute"})
    async with serve(limited) as client:
        answers = [await _search(client, ip="203.0.113.7") for _ in range(4)]
        other_client = await _search(client, ip="198.51.100.9")
        # Only the gateway's forwarded address counts: a caller cannot pick another one.
        direct = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=client.app, client=("198.51.100.20", 4000)),  # type: ignore[attr-defined]
            base_url="http://catalog",
        )
        async with direct:
            spoofed = [await _search(direct, ip=f"192.0.2.{n}") for n in range(4)]

    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    _limited(answers[3])
    assert other_client.status_code == 200
    assert [s.status_code for s in spoofed[:3]] == [200, 200, 200]
    _limited(spoofed[3])


async def test_two_replicas_share_one_budget(
    serve: Serve, settings: CatalogSettings, empty_index: str
) -> None:
    limited = settings.model_copy(update={"search_ip_rate_limit": "4/minute"})
    async with serve(limited) as one, serve(limited) as two:
        # Two apps, each with its own Redis pool and limiter, over the same Redis.
        assert state_of(one).rate_limiter is not state_of(two).rate_limiter
        answers = [await _search((one, two)[n % 2], ip="192.0.2.77") for n in range(5)]

    assert [a.status_code for a in answers[:4]] == [200, 200, 200, 200]
    _limited(answers[4])


async def test_an_unreachable_redis_lets_searches_through_when_failing_open(
    serve: Serve, elasticsearch_url: str, alias: str, empty_index: str
) -> None:
    settings = make_settings(elasticsearch_url, DEAD_REDIS, alias, search_ip_rate_limit="1/minute")
    async with serve(settings) as client:
        answers = [await _search(client, ip="192.0.2.8") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]


async def test_an_unreachable_redis_is_a_503_problem_when_failing_closed(
    serve: Serve, elasticsearch_url: str, alias: str, empty_index: str
) -> None:
    settings = make_settings(elasticsearch_url, DEAD_REDIS, alias, rate_limit_fail_open=False)
    async with serve(settings) as client:
        response = await _search(client, ip="192.0.2.8")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "rate_limit_unavailable"
    assert int(response.headers["retry-after"]) >= 1
