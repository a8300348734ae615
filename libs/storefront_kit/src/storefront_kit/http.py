"""Outgoing HTTP: one pooled client per target, request id passed on every call."""

import httpx

from storefront_kit.request_id import propagate_request_id

__all__ = ["create_http_client"]


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
