"""Client CPU of one orders provider call: over httpx (before) against over aiohttp (now).

Orders makes five or six HTTP calls per checkout (inventory reserve and commit, payment
authorize and capture, shipment create; issue 17). This starts the payment stand-in in
a process of its own (uvicorn, a free port) and measures this process's CPU per
``POST /v1/payments/authorize`` (the JSON body and ``Idempotency-Key`` orders sends,
with a request id bound as in a checkout), decoded from JSON:

* ``httpx``: the kit's ``create_http_client`` (what orders used before);
* ``aiohttp``: the kit's ``create_aiohttp_session`` and orders' ``send``
  (``orders_service.clients.resilience``), what orders uses now;
* ``aiohttp + resilient_call``: the same through the retry wrapper and status check
  (no breaker: that costs the same over either client).

Rounds alternate after a warm-up; the median and range of each are printed.
``--tracing`` instruments both clients as the kit does with tracing on (a ``CLIENT``
span per call, recorded but not exported, ``traceparent`` injected):

    .venv/bin/python bench/bench_provider_calls.py --rounds 5 --calls 500 [--tracing]
"""

import argparse
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from benchlib import alternating_rounds, print_loop_table, sandbox_stand_in
from orders_service.clients.resilience import RetryPolicy, resilient_call, send
from storefront_kit.http import create_aiohttp_session, create_http_client
from storefront_kit.request_id import request_id_var

PATH = "/v1/payments/authorize"


def _trace_clients() -> None:
    """The kit's client instrumentations on a provider that records every span."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)


def _body() -> dict[str, Any]:
    return {
        "order_id": str(uuid.uuid4()),
        "amount": 4999,
        "currency": "EUR",
        "method": {"type": "card", "token": "tok_visa"},
    }


async def _measure(url: str, rounds: int, calls: int, *, traced: str) -> None:
    request_id_var.set(uuid.uuid4().hex)
    httpx_client = create_http_client(base_url=url, timeout=5.0)
    session = create_aiohttp_session(timeout=5.0)
    policy = RetryPolicy(attempts=1)

    async def over_httpx(_: int) -> None:
        key = uuid.uuid4().hex
        response = await httpx_client.post(PATH, json=_body(), headers={"Idempotency-Key": key})
        assert response.status_code == 201, response.text
        response.json()

    async def over_aiohttp(_: int) -> None:
        key = uuid.uuid4().hex
        response = await send(
            session, "POST", url + PATH, json=_body(), headers={"Idempotency-Key": key}
        )
        assert response.status == 201, response.body
        response.json()

    async def through_resilient_call(_: int) -> None:
        key = uuid.uuid4().hex
        body = _body()
        response = await resilient_call(
            lambda: send(session, "POST", url + PATH, json=body, headers={"Idempotency-Key": key}),
            provider="payments",
            operation="authorize",
            policy=policy,
        )
        response.json()

    operations: dict[str, Callable[[int], Awaitable[None]]] = {
        "httpx (before)": over_httpx,
        "aiohttp (now)": over_aiohttp,
        "aiohttp + resilient_call": through_resilient_call,
    }
    try:
        cpu, call_counts = await alternating_rounds(
            operations, rounds=rounds, calls=calls, warm_up=200
        )
    finally:
        await httpx_client.aclose()
        await session.close()
    print(f"client CPU-ms per provider call, {rounds} rounds of {calls} calls each{traced}:")
    print_loop_table("client", operations, cpu, call_counts, digits=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--tracing", action="store_true", help="a CLIENT span per call")
    args = parser.parse_args()
    if args.tracing:
        _trace_clients()
    with sandbox_stand_in("payments") as url:
        uvloop.run(
            _measure(url, args.rounds, args.calls, traced=", tracing on" if args.tracing else "")
        )


if __name__ == "__main__":
    main()
