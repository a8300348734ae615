"""The kit's aiohttp session: what every call carries and what it never keeps.

Against a real aiohttp server on loopback that records each request's headers and sets
a cookie on every answer.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import count

from aiohttp import web
from aiohttp.test_utils import TestServer

from storefront_kit.http import create_aiohttp_session
from storefront_kit.request_id import request_id_var


@asynccontextmanager
async def recording_server(seen: list[dict[str, str]]) -> AsyncIterator[str]:
    async def record(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        response = web.json_response({})
        response.set_cookie("session", "from-the-server")
        return response

    app = web.Application()
    app.router.add_get("/", record)
    async with TestServer(app) as server:
        yield str(server.make_url("/"))


async def test_calls_carry_the_request_id_a_fresh_bearer_token_and_no_cookie() -> None:
    seen: list[dict[str, str]] = []
    minted = count(1)
    http = create_aiohttp_session(bearer_token=lambda: f"token-{next(minted)}")
    try:
        async with recording_server(seen) as url:
            token = request_id_var.set("request-id-1")
            try:
                async with http.get(url) as first:
                    assert first.status == 200
                async with http.get(url, headers={"X-Request-ID": "chosen-by-caller"}) as second:
                    assert second.status == 200
            finally:
                request_id_var.reset(token)
            async with http.get(url) as third:  # outside any request
                assert third.status == 200
    finally:
        await http.close()
    assert [h.get("X-Request-ID") for h in seen] == ["request-id-1", "chosen-by-caller", None]
    assert [h["Authorization"] for h in seen] == [f"Bearer token-{n}" for n in (1, 2, 3)]
    assert all("Cookie" not in h for h in seen)  # the server's cookie was not kept


async def test_without_a_token_no_authorization_is_sent() -> None:
    seen: list[dict[str, str]] = []
    http = create_aiohttp_session()
    try:
        async with recording_server(seen) as url, http.get(url) as response:
            assert response.status == 200
    finally:
        await http.close()
    assert "Authorization" not in seen[0]
