"""Provider calls over aiohttp: what the saga is told when a call fails, and what it sends.

Against real sockets on loopback: a port nothing listens on, a listener whose queue is
full (the connection never completes), a server that takes the request and never
answers or hangs up halfway, and an aiohttp server that answers as told and records
what it received. An error raised before the request left this process is *not sent*
(``uncertain=False``: the provider cannot have acted); one after it is *uncertain*.
"""

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from orders_service.clients.errors import ProviderRejected, ProviderUnavailable
from orders_service.clients.inventory import InventoryClient
from orders_service.clients.resilience import (
    ProviderResponse,
    RetryPolicy,
    resilient_call,
    send,
)
from storefront_kit.http import create_aiohttp_session
from storefront_kit.request_id import request_id_var
from storefront_stack.keys import KeyRing

FAST = RetryPolicy(attempts=2, initial_s=0.01, max_s=0.02)
Call = Callable[[], Awaitable[ProviderResponse]]


async def call(attempt: Call, *, policy: RetryPolicy = FAST) -> ProviderResponse:
    return await resilient_call(attempt, provider="p", operation="op", policy=policy)


async def unavailable(attempt: Call, *, policy: RetryPolicy = FAST) -> ProviderUnavailable:
    with pytest.raises(ProviderUnavailable) as failure:
        await call(attempt, policy=policy)
    return failure.value


@asynccontextmanager
async def session(**options: Any) -> AsyncIterator[aiohttp.ClientSession]:
    http = create_aiohttp_session(**options)
    try:
        yield http
    finally:
        await http.close()


@asynccontextmanager
async def raw_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A TCP server on a free loopback port running ``handle`` per connection."""
    tasks: set[asyncio.Task[None]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handle(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One whole request (headers and the ``Content-Length`` body) off the socket."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


async def test_a_refused_connection_was_not_sent() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with session() as http:
        failure = await unavailable(lambda: send(http, "POST", f"http://127.0.0.1:{port}/x"))
    assert failure.uncertain is False
    assert failure.message.startswith("connection error"), failure.message


async def test_a_connection_that_never_completes_times_out_as_not_sent() -> None:
    """A listener whose accept queue is full drops new SYNs: connecting hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):  # fill the queue until a connect no longer completes
            filler = socket.socket()
            filler.setblocking(False)
            fillers.append(filler)
            with suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            await asyncio.sleep(0.05)
            if filler.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 and not _connected(
                filler
            ):
                break
        else:
            pytest.fail("the listener kept accepting connections")
        async with session(connect_timeout=0.2, timeout=5.0) as http:
            failure = await unavailable(lambda: send(http, "POST", f"http://127.0.0.1:{port}/x"))
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert failure.uncertain is False
    assert failure.message == "timeout (ConnectionTimeoutError)"


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


async def test_waiting_too_long_for_a_pooled_connection_is_not_sent() -> None:
    requests: list[bytes] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await read_request(reader))
        await asyncio.sleep(60)

    async with (
        raw_server(silent) as url,
        session(connect_timeout=0.2, timeout=30.0, max_connections=1) as http,
    ):
        holding = asyncio.create_task(send(http, "POST", f"{url}/first", json={"n": 1}))
        while not requests:
            await asyncio.sleep(0.01)
        failure = await unavailable(
            lambda: send(http, "POST", f"{url}/second", json={"n": 2}),
            policy=RetryPolicy(attempts=1),
        )
        holding.cancel()
        with suppress(asyncio.CancelledError):
            await holding
    assert failure.uncertain is False
    assert failure.message == "timeout (ConnectionTimeoutError)"
    assert [r.split(b" ")[1] for r in requests] == [b"/first"]  # the second never left


async def test_a_read_timeout_after_the_request_left_is_uncertain_and_retried() -> None:
    requests: list[bytes] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await read_request(reader))
        await asyncio.sleep(60)

    async with raw_server(silent) as url, session(connect_timeout=2.0, timeout=0.3) as http:
        failure = await unavailable(lambda: send(http, "POST", f"{url}/x", json={"n": 1}))
    assert failure.uncertain is True
    assert failure.message.startswith("timeout"), failure.message
    assert len(requests) == 2  # the provider got both attempts
    assert all(r.endswith(b'{"n":1}') for r in requests)


@pytest.mark.parametrize(
    "answer",
    [b"", b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{"],
    ids=["no answer", "half an answer"],
)
async def test_a_server_hanging_up_after_the_request_is_uncertain(answer: bytes) -> None:
    requests: list[bytes] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await read_request(reader))
        writer.write(answer)
        await writer.drain()

    async with raw_server(hang_up) as url, session() as http:
        failure = await unavailable(lambda: send(http, "POST", f"{url}/x", json={"n": 1}))
    assert failure.uncertain is True
    assert failure.message.startswith("connection error"), failure.message
    assert len(requests) == 2


@asynccontextmanager
async def web_server(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> AsyncIterator[str]:
    """A real aiohttp server on a free loopback port answering every path with ``handler``."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with TestServer(app) as server:
        yield f"http://{server.host}:{server.port}"


async def test_answers_are_classified_by_status() -> None:
    async def answer(request: web.Request) -> web.Response:
        status = int(request.match_info["tail"])
        if status == 402:
            problem = {"code": "card_declined", "detail": "Insufficient funds.", "decline": "x"}
            return web.json_response(problem, status=402)
        if status == 302:
            raise web.HTTPFound("/200")
        if status == 200:
            return web.json_response({"ok": True})
        return web.Response(status=status, text="not json")

    async with web_server(answer) as url, session() as http:

        def to(status: int) -> Call:
            return lambda: send(http, "POST", f"{url}/{status}", json={})

        assert (await call(to(200))).json() == {"ok": True}
        for status, uncertain in ((500, True), (502, True), (503, False), (429, False)):
            failure = await unavailable(to(status))
            assert (failure.message, failure.uncertain) == (f"HTTP {status}", uncertain)
        with pytest.raises(ProviderRejected) as declined:
            await call(to(402))
        with pytest.raises(ProviderRejected) as missing:
            await call(to(404))
        with pytest.raises(ProviderRejected) as redirected:
            await call(to(302))  # an answer of its own, not followed
    assert (declined.value.status, declined.value.code, declined.value.detail) == (
        402,
        "card_declined",
        "Insufficient funds.",
    )
    assert declined.value.body["decline"] == "x"
    assert (missing.value.code, missing.value.detail, missing.value.body) == (
        "http_404",
        "Not Found",
        {},
    )
    assert redirected.value.status == 302


async def test_inventory_calls_carry_the_request_id_and_a_token_inventory_accepts(
    keys: KeyRing,
) -> None:
    seen: list[tuple[str, dict[str, str], Any]] = []
    order_id = uuid.uuid4()

    async def inventory(request: web.Request) -> web.Response:
        seen.append((request.path, dict(request.headers), await request.json()))
        if request.path.endswith("/reserve"):
            return web.json_response(
                {"status": "reserved", "lines": [], "total": 0, "currency": "EUR"}
            )
        return web.json_response({"status": "committed"})

    orders = keys.security("orders")
    async with (
        web_server(inventory) as url,
        session(bearer_token=orders.token_source("inventory")) as http,
    ):
        client = InventoryClient(http, base_url=f"{url}/base/", policy=FAST)
        token = request_id_var.set("checkout-request-1")
        try:
            reserved = await client.reserve(
                order_id=order_id, items=[{"sku": "SKU-1", "qty": 2}], ttl_s=60
            )
        finally:
            request_id_var.reset(token)
        committed = await client.commit(order_id=order_id)  # outside any request
    assert (reserved.status, committed) == ("reserved", "committed")
    (path, headers, body), (_, later_headers, _) = seen
    assert path == "/base/internal/inventory/reserve"
    assert body == {"order_id": str(order_id), "items": [{"sku": "SKU-1", "qty": 2}], "ttl_s": 60}
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Request-ID"] == "checkout-request-1"
    assert "X-Request-ID" not in later_headers
    verifier = keys.security("inventory").service_verifier
    for sent in (headers, later_headers):
        scheme, _, bearer = sent["Authorization"].partition(" ")
        claims = await verifier.verify(bearer)
        assert (scheme, claims.subject, claims.audience) == ("Bearer", "orders", "inventory")


async def test_a_body_is_sent_as_compact_json() -> None:
    received: list[bytes] = []

    async def echo(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.json_response({})

    async with web_server(echo) as url, session() as http:
        await call(lambda: send(http, "POST", f"{url}/x", json={"name": "Zoë", "n": [1, 2]}))
        await call(lambda: send(http, "GET", f"{url}/x", params={"order_id": "o-1"}))
    assert received == [orjson.dumps({"name": "Zoë", "n": [1, 2]}), b""]
