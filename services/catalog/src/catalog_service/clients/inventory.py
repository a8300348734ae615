"""Inventory's paged export (``/internal/inventory/products/export``), what a reindex reads."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

__all__ = ["EXPORT_PATH", "export_pages"]

EXPORT_PATH = "/internal/inventory/products/export"


async def export_pages(
    client: httpx.AsyncClient,
    *,
    base_url: str,
    auth: httpx.Auth | None,
    page_size: int,
    max_attempts: int = 5,
) -> AsyncIterator[list[dict[str, Any]]]:
    """Inventory's export, page by page (``{items, next_after}``, keyset paging on sku)."""
    after: str | None = None
    url = base_url.rstrip("/") + EXPORT_PATH
    while True:
        params: dict[str, Any] = {"limit": page_size}
        if after is not None:
            params["after"] = after
        for attempt in range(1, max_attempts + 1):
            try:
                response = await client.get(
                    url, params=params, auth=auth or httpx.USE_CLIENT_DEFAULT
                )
                if response.status_code < 500:
                    break
            except httpx.TransportError:
                if attempt == max_attempts:
                    raise
            if attempt < max_attempts:
                await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        response.raise_for_status()
        body = response.json()
        yield list(body["items"])
        after = body.get("next_after")
        if not after:
            return
