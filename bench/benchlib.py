"""What the benchmarks share: a platform of their own, staff and customer logins, a product
to buy and a checkout of it, products written straight into inventory's database, and the
CPU and Python calls of an operation run in a loop (or of several, in alternating rounds).

The scripts import it as a sibling module (``python bench/bench_x.py`` puts ``bench/`` on
the path); ``storefront_stack`` is imported where it is used, as in the scripts, so that
``--help`` needs none of it.
"""

import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import httpx
from rich.console import Console
from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from storefront_stack.platform import Platform
    from storefront_stack.topology import Endpoints

__all__ = [
    "CHECKOUT_EVENTS",
    "STOCK_ON_HAND",
    "admin_headers",
    "alternating_rounds",
    "checkout",
    "cpu_ms",
    "create_product",
    "customer_headers",
    "insert_stocked_products",
    "migrated_database",
    "own_platform",
    "print_loop_table",
    "python_calls",
    "sandbox_stand_in",
]

T = TypeVar("T")

#: A checkout's events on ``orders.events``, in the order its saga publishes them: each
#: step's own event before the status change it leads to (RESERVED, PAID,
#: SHIPMENT_CREATED, CONFIRMED). ``order.reviewed`` is a staff action on
#: ``audit.events``, never a checkout's.
CHECKOUT_EVENTS = (
    "order.created",
    "order.status_changed",
    "payment.captured",
    "order.status_changed",
    "order.status_changed",
    "order.confirmed",
    "order.status_changed",
)

#: The units on hand of :func:`insert_stocked_products`' products: more than any run sells.
STOCK_ON_HAND = 1_000_000_000

#: The payment stand-in's card that is always authorized.
_CARD = "tok_visa"


def admin_headers(auth_signing_key_pem: str) -> dict[str, str]:
    """An admin's bearer header for an hour, signed with the platform's user-token key."""
    from storefront_stack.logins import bearer, user_token

    env = {"AUTH_JWT_SIGNING_KEY": auth_signing_key_pem}
    return bearer(user_token(env, "admin", ttl=timedelta(hours=1)))


async def customer_headers(client: httpx.AsyncClient) -> dict[str, str]:
    """A new customer's bearer header, through OTP and the Telegram stand-in (as the e2e
    tests log in)."""
    from storefront_stack.logins import bearer, customer_login

    return bearer(await customer_login(client))


async def create_product(
    client: httpx.AsyncClient, admin: dict[str, str], sku: str, *, name: str, units: int
) -> None:
    """``sku`` on sale at 9.99 EUR with ``units`` in stock (``admin``: the staff header)."""
    from storefront_stack import shop

    body = shop.product_body(
        sku, name=name, price=999, stock=units, brand="Bench", category="bench"
    )
    await shop.create_product(client, admin, body)


async def checkout(
    session: aiohttp.ClientSession, url: str, sku: str, headers: dict[str, str]
) -> tuple[str, dict[str, Any] | None]:
    """One unit of ``sku`` bought at ``url`` (``POST /api/v1/orders``): the outcome
    (``"201 CONFIRMED"``, ``"409"``, … or the client error's name) and the answer's body
    (``{}`` for an error status, ``None`` when no answer came)."""
    from storefront_stack.shop import order_body

    try:
        async with session.post(
            url,
            json=order_body(sku, token=_CARD),
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        ) as response:
            body = await response.json(content_type=None) if response.status < 300 else {}
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__, None
    return f"{response.status} {body.get('status', '')}".strip(), body


async def insert_stocked_products(engine: "AsyncEngine", count: int, *, prefix: str) -> list[str]:
    """``count`` products (``<prefix>-<random>`` skus, 12.50 EUR) with :data:`STOCK_ON_HAND`
    units each, inserted straight into inventory's database at ``engine``: their skus."""
    skus = [f"{prefix}-{uuid.uuid4().hex[-12:].upper()}" for _ in range(count)]
    async with engine.begin() as connection:
        for sku in skus:
            product_id = uuid.uuid4()
            await connection.execute(
                text(
                    "INSERT INTO product (id, sku, name, brand, category, price, currency)"
                    " VALUES (:id, :sku, 'Bench product', 'Bench', 'bench', 1250, 'EUR')"
                ),
                {"id": product_id, "sku": sku},
            )
            await connection.execute(
                text("INSERT INTO stock (sku, product_id, on_hand) VALUES (:sku, :id, :n)"),
                {"sku": sku, "id": product_id, "n": STOCK_ON_HAND},
            )
    return skus


@contextmanager
def own_platform(
    console: Console, prefix: str, *, state_dir: Path | None = None, **options: Any
) -> Iterator[tuple["Platform", "Endpoints"]]:
    """A whole platform on free ports (as ``make test`` starts it), in ``state_dir`` or a
    scratch directory named ``prefix…``; stopped on exit. ``options``: the rest of its
    :class:`~storefront_stack.platform.PlatformOptions`."""
    from storefront_stack.platform import Platform, PlatformOptions

    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        platform = Platform(PlatformOptions.for_tests(state_dir or Path(scratch), **options))
        with console.status("starting the platform (PostgreSQL, Redis, Elasticsearch, nginx)"):
            endpoints = platform.start()
        try:
            yield platform, endpoints
        finally:
            platform.stop()


async def cpu_ms(operation: Callable[[T], Awaitable[Any]], items: Sequence[T]) -> float:
    """CPU-ms of this process per ``operation``, run once for each of ``items`` in turn."""
    began = time.process_time()
    for item in items:
        await operation(item)
    return (time.process_time() - began) * 1000 / len(items)


async def python_calls(operation: Callable[[T], Awaitable[Any]], items: Sequence[T]) -> float:
    """Python function calls per ``operation`` over ``items`` (``sys.setprofile``)."""
    calls = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(profile)
    try:
        for item in items:
            await operation(item)
    finally:
        sys.setprofile(None)
    return calls / len(items)


async def alternating_rounds(
    operations: Mapping[str, Callable[[int], Awaitable[Any]]],
    *,
    rounds: int,
    calls: int,
    warm_up: int,
    profiled: int = 50,
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Each operation ``warm_up`` times, then ``rounds`` rounds in which each in turn runs
    ``calls`` times, so that the machine's load hits them alike: per name, the CPU-ms of
    each round (:func:`cpu_ms`) and the Python calls (:func:`python_calls`, over
    ``profiled`` runs). An operation is given the run's number."""
    for operation in operations.values():
        for n in range(warm_up):  # connections, caches
            await operation(n)
    cpu: dict[str, list[float]] = {name: [] for name in operations}
    for _ in range(rounds):
        for name, operation in operations.items():
            cpu[name].append(await cpu_ms(operation, range(calls)))
    python = {
        name: await python_calls(operation, range(profiled))
        for name, operation in operations.items()
    }
    return cpu, python


def print_loop_table(
    first_column: str,
    names: Iterable[str],
    cpu: Mapping[str, Sequence[float]],
    calls: Mapping[str, float],
    *,
    digits: int = 2,
) -> None:
    """One row per name: its Python calls, and the median and range of its CPU-ms rounds."""
    names = list(names)
    width = max(len(first_column), *(len(name) for name in names))
    print(f"{first_column:<{width}} {'Python calls':>13} {'CPU-ms median':>14}  range")
    for name in names:
        rounds = cpu[name]
        print(
            f"{name:<{width}} {calls[name]:>13,.0f} {statistics.median(rounds):>14.{digits}f}  "
            f"{min(rounds):.{digits}f}-{max(rounds):.{digits}f}"
        )


@contextmanager
def migrated_database(
    server_url: str | None, service: str, prefix: str
) -> Iterator[tuple[str, Path]]:
    """A new database of ``service`` (its migrations applied) on ``server_url``, or on a
    throwaway PostgreSQL server started for the block; its URL and a scratch folder."""
    from storefront_stack import infra
    from storefront_stack.processes import free_port
    from storefront_stack.pytest_plugin import create_test_database

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        scratch = Path(tmp)
        server = None
        if server_url is None:
            server = infra.start_postgres(
                scratch / "postgres" / "data",
                free_port(),
                log_file=scratch / "postgres.log",
                fast_unsafe=True,
            )
            server_url = server.url
        try:
            yield create_test_database(server_url, service), scratch
        finally:
            if server is not None:
                server.stop()


@contextmanager
def sandbox_stand_in(app: str) -> Iterator[str]:
    """A third-party stand-in (``storefront_sandbox.<app>``) under uvicorn in a process of
    its own, so that its CPU is not the bench's: its URL, once it is live."""
    from storefront_stack.serving import uvicorn_process

    with uvicorn_process(f"storefront_sandbox.{app}:create_app", dict(os.environ)) as url:
        yield url
