"""Outgoing HTTP: one pooled client per target, request id passed on every call.

Two flavours: :func:`create_http_client` (httpx, what most services call each other
with) and :func:`create_aiohttp_session` (aiohttp, for hot paths: about half the client
CPU per call; orders' saga calls and notifications' bot use it, docs/benchmarks.md).
aiohttp is imported only by the second, so a service that does not use it need not
install it.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from storefront_kit.request_id import REQUEST_ID_HEADER, propagate_request_id, request_id_var

if TYPE_CHECKING:
    import aiohttp
    from aiohttp import ClientHandlerType, ClientMiddlewareType, ClientRequest, ClientResponse

__all__ = ["AIOHTTP_KEEPALIVE_S", "create_aiohttp_session", "create_http_client"]

#: Seconds an idle aiohttp connection is kept: below every server's own keep-alive
#: (uvicorn's 75 s here, ``storefront_kit.cli``; 5 s by default elsewhere), so the pool
#: drops a connection before the server may close it under a request.
AIOHTTP_KEEPALIVE_S = 4.0


def create_http_client(
    *,
    base_url: str = "",
    timeout: float = 5.0,
    connect_timeout: float = 2.0,
    auth: httpx.Auth | None = None,
    max_connections: int = 100,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that propagates ``X-Request-ID`` and never waits forever."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=20),
        event_hooks={"request": [propagate_request_id]},
        auth=auth,
    )


def create_aiohttp_session(
    *,
    timeout: float = 5.0,
    connect_timeout: float = 2.0,
    bearer_token: Callable[[], str] | None = None,
    max_connections: int = 100,
) -> "aiohttp.ClientSession":
    """An ``aiohttp.ClientSession`` that propagates ``X-Request-ID`` and never waits forever.

    Call it inside a running event loop (a lifespan) and close it there. Timeouts:
    ``connect_timeout`` bounds getting a connection (waiting for a free one in the pool
    of ``max_connections`` included), ``timeout`` each wait for the answer's bytes (as
    httpx's read timeout), and the whole call takes at most their sum. So a timeout
    raised before the request was written is always ``aiohttp.ConnectionTimeoutError``:
    the whole-call deadline cannot pass while connecting. ``bearer_token`` (e.g.
    :meth:`storefront_kit.security.ServiceSecurity.token_source`) is called for every
    request and sent as ``Authorization: Bearer``. Keep-alive connections
    (:data:`AIOHTTP_KEEPALIVE_S`), no cookies, nothing taken from the environment
    (proxies, netrc). With tracing on, every call is a ``CLIENT`` span
    (:mod:`storefront_kit.tracing`). A session does follow redirects unless a call
    passes ``allow_redirects=False``.
    """
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=max_connections, keepalive_timeout=AIOHTTP_KEEPALIVE_S
        ),
        timeout=aiohttp.ClientTimeout(
            total=connect_timeout + timeout,
            connect=connect_timeout,
            sock_connect=connect_timeout,
            sock_read=timeout,
        ),
        middlewares=(_outgoing_headers(bearer_token),),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )


def _outgoing_headers(
    bearer_token: Callable[[], str] | None,
) -> "ClientMiddlewareType":
    """One client middleware for the request id and, when given, the bearer token."""

    async def middleware(
        request: "ClientRequest", handler: "ClientHandlerType"
    ) -> "ClientResponse":
        request_id = request_id_var.get()
        if request_id and REQUEST_ID_HEADER not in request.headers:
            request.headers[REQUEST_ID_HEADER] = request_id
        if bearer_token is not None:
            request.headers["Authorization"] = f"Bearer {bearer_token()}"
        return await handler(request)

    return middleware
