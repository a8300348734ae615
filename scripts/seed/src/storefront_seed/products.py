"""Seed the catalogue through the inventory admin API, with a progress bar.

Going through the API (not straight into the tables) means every product also produces
its ``product.upserted`` event, so catalog's search index fills the way it does in
production. A product whose sku exists already (409 ``sku_taken``) counts as seeded,
which makes a second run a no-op.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from jwt_core_lib import SigningKey, TokenIssuer
from storefront_seed.catalogue import ProductSeed, generate_catalogue

if TYPE_CHECKING:
    from storefront_stack.platform import Platform

__all__ = ["SeedReport", "admin_token", "load_products", "seed", "seed_products"]

DEFAULT_COUNT = 10_000
RETRIES = 5
DEFAULT_SEED_VALUE = 20261123


class SeedReport:
    """How a seed run went."""

    def __init__(self) -> None:
        self.created = 0
        self.existing = 0
        self.failed: list[tuple[str, int, str]] = []


async def load_products(
    base_url: str,
    admin_token: str,
    products: Iterable[ProductSeed],
    *,
    total: int,
    concurrency: int = 16,
    show_progress: bool = True,
) -> SeedReport:
    """POST every product to ``/api/v1/admin/products``; 409 means it is there already."""
    report = SeedReport()
    queue: asyncio.Queue[ProductSeed | None] = asyncio.Queue(maxsize=concurrency * 4)
    headers = {"Authorization": f"Bearer {admin_token}"}
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not show_progress,
    ) as progress:
        task = progress.add_task("products", total=total)
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:

            async def post(product: ProductSeed) -> httpx.Response:
                # A busy machine's transient 503 (a pool wait, a slow dependency) is tried
                # again: the sku makes the retry safe (a product that got in is a 409).
                for attempt in range(RETRIES):
                    try:
                        response = await client.post(
                            "/api/v1/admin/products", json=product.as_request()
                        )
                    except httpx.TransportError:
                        if attempt == RETRIES - 1:
                            raise
                    else:
                        if response.status_code not in (502, 503, 504) or attempt == RETRIES - 1:
                            return response
                    await asyncio.sleep(0.5 * 2**attempt)
                raise AssertionError("unreachable")

            async def worker() -> None:
                while (product := await queue.get()) is not None:
                    response = await post(product)
                    if response.status_code == 201:
                        report.created += 1
                    elif response.status_code == 409:
                        report.existing += 1
                    else:
                        report.failed.append((product.sku, response.status_code, response.text))
                    progress.advance(task)

            workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
            for product in products:
                await queue.put(product)
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
    return report


def admin_token(
    signing_key_pem: str, *, issuer: str = "storefront-auth", audience: str = "storefront"
) -> str:
    """A short-lived admin token signed with auth's own key (the seed acts as an admin)."""
    token_issuer = TokenIssuer(signing_key=SigningKey.from_pem(signing_key_pem), issuer=issuer)
    return token_issuer.issue(
        subject="seed", audience=audience, ttl=timedelta(minutes=30), roles=("admin",)
    )


def seed_products(
    base_url: str, token: str, environ: Mapping[str, str] | None = None
) -> SeedReport:
    """Seed ``SEED_PRODUCTS`` products (default 10,000) from ``SEED_VALUE`` at ``base_url``."""
    env = os.environ if environ is None else environ
    count = int(env.get("SEED_PRODUCTS") or DEFAULT_COUNT)
    seed_value = int(env.get("SEED_VALUE") or DEFAULT_SEED_VALUE)
    report = asyncio.run(
        load_products(
            base_url,
            token,
            generate_catalogue(count, seed=seed_value),
            total=count,
            show_progress=sys.stdout.isatty(),
        )
    )
    print(f"products: {report.created} created, {report.existing} already there")
    if report.failed:
        sku, status, body = report.failed[0]
        raise RuntimeError(f"{len(report.failed)} products failed, e.g. {sku}: {status} {body}")
    return report


def seed(platform: Platform) -> None:
    """Seed the catalogue of a platform the local runner started, through its gateway."""
    assert platform.endpoints is not None
    env = platform.platform_env
    token = admin_token(
        env["AUTH_JWT_SIGNING_KEY"],
        issuer=env.get("STOREFRONT_JWT_ISSUER", "storefront-auth"),
        audience=env.get("STOREFRONT_JWT_AUDIENCE", "storefront"),
    )
    seed_products(platform.endpoints.gateway_url, token)
