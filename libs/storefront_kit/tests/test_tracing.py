"""Tracing: a request, the event it staged and the event's handling are one trace.

A real uvicorn runs a kit-built service (tests/tracing_app.py) with an outbox, the relay
and a stream consumer on real PostgreSQL and Redis, exporting to the OTLP stand-in
(``storefront_sandbox.otlp``, also under uvicorn). The request arrives with a W3C
``traceparent``; the spans that arrive must hang together: the request's server span
under the caller's, its SQL and Redis spans under it, the relay's publish span under the
request, the consumer's span under the publish, the handler's HTTP call under the
consumer and the called route's server span under that call (and the same for the
request's own call through the kit's aiohttp session), and the handler's log line
carrying the trace. Without an endpoint nothing is installed at all.
"""

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from storefront_kit.tracing import current_traceparent, fastapi_telemetry, tracing_enabled
from storefront_stack.processes import free_port
from storefront_stack.pytest_plugin import create_test_database
from storefront_stack.serving import uvicorn_process

HERE = Path(__file__).resolve().parent
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "SENTRY" not in k and "OTLP" not in k}
    env.update(STOREFRONT_ENVIRONMENT="test", STOREFRONT_GC_FREEZE="false")
    return env


@pytest.fixture(scope="module")
def otlp_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("otlp") / "otlp.log"
    target = "storefront_sandbox.otlp:create_app"
    with uvicorn_process(target, _base_env(), port=free_port(), log=log) as url:
        yield url


@contextmanager
def _service(
    postgres_server_url: str, redis_url: str, log: Path, *, otlp_endpoint: str
) -> Iterator[str]:
    port = free_port()
    env = {
        **_base_env(),
        "TRACED_DATABASE_URL": create_test_database(postgres_server_url),
        "TRACED_REDIS_URL": redis_url,
        "TRACED_HOST": "127.0.0.1",
        "TRACED_PORT": str(port),
        "STOREFRONT_OTLP_ENDPOINT": otlp_endpoint,
        "STOREFRONT_LOG_JSON": "true",
    }
    with uvicorn_process("tracing_app:create_app", env, port=port, log=log, app_dir=HERE) as url:
        yield url


def _handled(redis_url: str, event_id: str) -> None:
    from redis import Redis

    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        deadline = time.monotonic() + 30
        while event_id not in client.lrange("traced:handled", 0, -1):
            assert time.monotonic() < deadline, "the event was not handled"
            time.sleep(0.1)
    finally:
        client.close()


def _spans(otlp_url: str, **params: str) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = httpx.get(f"{otlp_url}/spans", params=params).json()["spans"]
    return spans


def _log_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log.read_text().splitlines():
        with_json = line.strip()
        if with_json.startswith("{"):
            lines.append(json.loads(with_json))
    return lines


def test_a_request_and_the_event_it_caused_are_one_trace(
    postgres_server_url: str, redis_url: str, otlp_url: str, tmp_path: Path
) -> None:
    httpx.post(f"{otlp_url}/reset")
    log = tmp_path / "traced.log"
    with _service(postgres_server_url, redis_url, log, otlp_endpoint=otlp_url) as url:
        response = httpx.post(f"{url}/things", headers={"traceparent": TRACEPARENT}, timeout=10)
        assert response.status_code == 202, response.text
        event_id = response.json()["event_id"]
        _handled(redis_url, event_id)
    # Stopped: the last batch of spans was exported on the way out.
    spans = _spans(otlp_url)
    # Nothing but this trace: the relay's polls and the consumer's reads start none.
    assert {span["trace_id"] for span in spans} == {TRACE_ID}, spans
    assert {span["service"] for span in spans} == {"traced"}

    def one(name: str, kind: str, parent: str | None) -> dict[str, Any]:
        found = [
            s
            for s in spans
            if s["name"] == name and s["kind"] == kind and s["parent_span_id"] == parent
        ]
        assert len(found) == 1, (name, kind, parent, spans)
        return found[0]

    request = one("POST /things", "SERVER", CALLER_SPAN)
    # The envelope carries the request's context (the route ran in its server span).
    assert response.json()["traceparent"] == f"00-{TRACE_ID}-{request['span_id']}-01"
    inserts = [s for s in spans if s["kind"] == "CLIENT" and "INSERT" in s["name"]]
    assert inserts
    assert all(s["parent_span_id"] == request["span_id"] for s in inserts)
    redis_set = one("SET", "CLIENT", request["span_id"])
    assert redis_set["attributes"]["db.system"] == "redis"
    # The route's own call through the kit's aiohttp session, answered under it, with the
    # request id passed on.
    own_call = one("GET", "CLIENT", request["span_id"])
    url = own_call["attributes"].get("url.full") or own_call["attributes"]["http.url"]
    assert url.endswith("/echo?via=aiohttp")
    one("GET /echo", "SERVER", own_call["span_id"])
    assert response.json()["echoed_request_id"] == response.headers["X-Request-ID"]
    publish = one("traced.events publish", "PRODUCER", request["span_id"])
    consume = one("traced.events process", "CONSUMER", publish["span_id"])
    assert consume["attributes"]["messaging.message.id"] == event_id
    call = one("GET", "CLIENT", consume["span_id"])
    url = call["attributes"].get("url.full") or call["attributes"]["http.url"]
    assert url.endswith("/echo")
    one("GET /echo", "SERVER", call["span_id"])
    # The handler's log line names the consumer's span.
    (handled,) = [line for line in _log_lines(log) if line.get("event") == "thing_handled"]
    assert (handled["trace_id"], handled["span_id"]) == (TRACE_ID, consume["span_id"])


def test_without_an_endpoint_nothing_is_traced(
    postgres_server_url: str, redis_url: str, otlp_url: str, tmp_path: Path
) -> None:
    httpx.post(f"{otlp_url}/reset")
    log = tmp_path / "untraced.log"
    with _service(postgres_server_url, redis_url, log, otlp_endpoint="") as url:
        response = httpx.post(f"{url}/things", headers={"traceparent": TRACEPARENT}, timeout=10)
        assert response.status_code == 202, response.text
        assert response.json()["traceparent"] == ""  # nothing stamped into the event
        _handled(redis_url, response.json()["event_id"])
    assert _spans(otlp_url) == []
    (handled,) = [line for line in _log_lines(log) if line.get("event") == "thing_handled"]
    assert "trace_id" not in handled


def test_without_an_endpoint_nothing_is_installed() -> None:
    # In a fresh interpreter: a service app built without an endpoint has no provider,
    # no instrumented client, and has not imported the exporter or an instrumentation.
    script = """
import json, sys
import httpx, redis.asyncio
from opentelemetry import trace
from storefront_kit.app import create_service_app
from storefront_kit.events import EventEnvelope
from storefront_kit.settings import ServiceSettings
from contextlib import asynccontextmanager

@asynccontextmanager
async def lifespan(app):
    yield

create_service_app(settings=ServiceSettings(), title="t", description="d", version="1",
                   lifespan=lifespan, routers=[], health_checks=lambda _: [])
event = EventEnvelope.new(type="x.y", source="t", data={})
print(json.dumps({
    "provider": type(trace.get_tracer_provider()).__name__,
    "loaded": sorted(m for m in sys.modules if m.startswith(("opentelemetry.exporter",
                                                            "opentelemetry.instrumentation"))),
    "httpx": hasattr(httpx.AsyncHTTPTransport.handle_async_request, "__wrapped__"),
    "redis": hasattr(redis.asyncio.Redis.execute_command, "__wrapped__"),
    "envelope": json.loads(event.model_dump_json()),
}))
"""
    env = {**_base_env(), "STOREFRONT_OTLP_ENDPOINT": ""}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["provider"] == "ProxyTracerProvider"
    assert found["loaded"] == []  # neither the exporter nor an instrumentation imported
    assert found["httpx"] is False
    assert found["redis"] is False
    assert "traceparent" not in found["envelope"]


async def test_helpers_are_inert_without_a_provider() -> None:
    # This test process never installs tracing (the traced services run as subprocesses).
    assert not tracing_enabled()
    assert current_traceparent() is None
    await asyncio.sleep(0)


def test_an_endpoint_that_is_not_a_url_is_refused() -> None:
    from pydantic import ValidationError

    from storefront_kit.settings import PlatformSettings

    with pytest.raises(ValidationError):
        PlatformSettings(otlp_endpoint="collector:4318")
    assert PlatformSettings(otlp_endpoint="http://collector:4318/").otlp_endpoint == (
        "http://collector:4318"
    )
    with pytest.raises(ValidationError):
        PlatformSettings(trace_sample_ratio=1.5)


def test_websockets_probes_and_scrapes_are_not_traced() -> None:
    exclude = fastapi_telemetry()["exclude"]
    assert exclude is not None
    assert exclude({"type": "websocket", "path": "/ws"})  # a span would last the socket's life
    assert exclude({"type": "http", "path": "/health/ready"})
    assert exclude({"type": "http", "path": "/metrics"})
    assert not exclude({"type": "http", "path": "/api/v1/orders"})
    assert not exclude({"type": "http", "path": "/ws/presence"})
