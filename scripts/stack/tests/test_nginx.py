"""The gateway's rules, checked against real nginx in front of real (echo) upstreams."""

import asyncio
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets

from storefront_kit.cli import KEEP_ALIVE_TIMEOUT_S
from storefront_stack import nginx
from storefront_stack.processes import ManagedProcess, PidRegistry, free_port
from storefront_stack.topology import SERVICES


def echo_app(name: str) -> Any:
    """An upstream that answers with what it received (and its own X-Request-ID)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": f"hello from {name}"})
            await send({"type": "websocket.close", "code": 1000})
            return
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = {
            "upstream": name,
            "path": scope["path"],
            "query": scope["query_string"].decode(),
            "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
            "size": size,
        }
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"x-request-id", b"upstream-own-id"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    return app


class Upstreams:
    def __init__(self, names: list[str]) -> None:
        self.ports: dict[str, int] = {}
        self.servers: list[uvicorn.Server] = []
        for name in names:
            port = free_port()
            config = uvicorn.Config(
                echo_app(name),
                host="127.0.0.1",
                port=port,
                log_level="warning",
                # As the services: outlasts nginx's upstream keepalive (a reset is a 502).
                timeout_keep_alive=KEEP_ALIVE_TIMEOUT_S,
            )
            server = uvicorn.Server(config)
            threading.Thread(target=server.run, daemon=True).start()
            self.ports[name] = port
            self.servers.append(server)
        deadline = time.monotonic() + 10
        while not all(s.started for s in self.servers) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        for server in self.servers:
            server.should_exit = True


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("gateway")
    # ws-gateway's upstream is a port nobody listens on: a service that is down.
    upstreams = Upstreams([s.name for s in SERVICES if s.name != "orders"] + ["telegram"])
    dead_port = free_port()
    binary = nginx.ensure_nginx()
    worker_user = nginx.prepare_local(state / "temp")
    cert, key = nginx.write_self_signed_cert(state / "certs")
    http_port, https_port = free_port(), free_port()
    config = nginx.GatewayConfig(
        upstreams={
            s.name: [f"127.0.0.1:{upstreams.ports.get(s.name, dead_port)}"] for s in SERVICES
        },
        sandbox_upstreams={"telegram": f"127.0.0.1:{upstreams.ports['telegram']}"},
        http_port=http_port,
        https_port=https_port,
        cert_file=str(cert),
        key_file=str(key),
        temp_dir=str(state / "temp"),
        worker_user=worker_user,
        auth_burst=5,
        auth_rate="1r/s",
        access_log=str(state / "access.log"),
    )
    process = _run_nginx(binary, nginx.render_config(config), state, http_port)
    yield {
        "http": f"http://127.0.0.1:{http_port}",
        "https": f"https://127.0.0.1:{https_port}",
        "state": state,
    }
    process.stop()
    upstreams.stop()


def _run_nginx(binary: str, rendered: str, state: Path, http_port: int) -> ManagedProcess:
    """nginx on ``rendered`` (``state``/nginx.conf), checked, started and given up to 10 s
    to answer on ``http_port``."""
    conf = state / "nginx.conf"
    conf.write_text(rendered)
    nginx.check_config(binary, conf, state)
    process = ManagedProcess(
        "nginx",
        nginx.nginx_command(binary, conf, state),
        env={},
        cwd=state,
        registry=PidRegistry(state / "pids.json"),
        log_file=state / "nginx.log",
    ).start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{http_port}/", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    return process


def _get(gateway: dict[str, Any], path: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(gateway["http"] + path, timeout=5, **kwargs)


@pytest.mark.parametrize(
    ("path", "upstream"),
    [
        ("/api/v1/auth/otp/send", "auth"),
        ("/api/v1/users/me", "auth"),
        ("/api/v1/admin/users", "auth"),
        ("/api/v1/admin/users/42/roles", "auth"),
        ("/api/v1/admin/audit", "auth"),
        ("/.well-known/jwks.json", "auth"),
        ("/api/v1/products/search", "catalog"),
        ("/api/v1/products/0193", "catalog"),
        ("/api/v1/admin/products", "inventory"),
        ("/api/v1/admin/products/0193/stock", "inventory"),
        ("/api/v1/telegram/webhook", "notifications"),
        ("/api/v1/admin/presence", "ws-gateway"),
        ("/api/v1/admin/notifications/dead-letters", "notifications"),
    ],
)
def test_routes_reach_their_service_unchanged(
    gateway: dict[str, Any], path: str, upstream: str
) -> None:
    body = _get(gateway, path + "?page=2").json()
    assert body["upstream"] == upstream
    assert body["path"] == path  # no rewriting (docs/design.md §4)
    assert body["query"] == "page=2"


@pytest.mark.parametrize(
    ("path", "upstream", "mapped"),
    [
        ("/health/auth", "auth", "/health/ready"),
        ("/health/ws-gateway", "ws-gateway", "/health/ready"),
        ("/docs/catalog", "catalog", "/docs"),
        ("/docs/catalog/openapi.json", "catalog", "/openapi.json"),
    ],
)
def test_health_and_docs_are_mapped(
    gateway: dict[str, Any], path: str, upstream: str, mapped: str
) -> None:
    body = _get(gateway, path).json()
    assert (body["upstream"], body["path"]) == (upstream, mapped)


def test_docs_learn_their_public_prefix(gateway: dict[str, Any]) -> None:
    assert _get(gateway, "/docs/inventory").json()["headers"]["x-forwarded-prefix"] == (
        "/docs/inventory"
    )
    assert "x-forwarded-prefix" not in _get(gateway, "/api/v1/admin/products").json()["headers"]


def test_sandbox_prefix_is_stripped(gateway: dict[str, Any]) -> None:
    body = _get(gateway, "/sandbox/telegram/messages?chat_id=7").json()
    assert (body["upstream"], body["path"], body["query"]) == ("telegram", "/messages", "chat_id=7")


@pytest.mark.parametrize(
    "path",
    [
        "/internal/inventory/reserve",
        "/internal",
        "//internal/inventory/reserve",
        "/%69nternal/inventory/reserve",
        "/api/../internal/inventory/release",
        "/api/v1/orders/../../../internal/inventory/commit",
        "/metrics",
        "/",
        "/api/v2/anything",
    ],
)
def test_edge_refuses_with_a_problem(gateway: dict[str, Any], path: str) -> None:
    response = httpx.post(gateway["http"] + path, json={}, timeout=5)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "not_found"
    assert problem["request_id"] == response.headers["x-request-id"]
    assert "upstream" not in problem


def test_a_good_request_id_is_kept_end_to_end(gateway: dict[str, Any]) -> None:
    response = _get(gateway, "/api/v1/users/me", headers={"X-Request-ID": "client-id-0001"})
    assert response.json()["headers"]["x-request-id"] == "client-id-0001"
    assert response.headers.get_list("x-request-id") == ["client-id-0001"]


@pytest.mark.parametrize("bad", ["short", "has spaces in it", "x" * 200, "semi;colon;id"])
def test_a_bad_request_id_is_replaced(gateway: dict[str, Any], bad: str) -> None:
    response = _get(gateway, "/api/v1/users/me", headers={"X-Request-ID": bad})
    seen = response.json()["headers"]["x-request-id"]
    assert seen != bad
    assert len(seen) == 32
    assert response.headers.get_list("x-request-id") == [seen]


def test_trace_context_reaches_the_service_and_its_trace_id_is_logged(
    gateway: dict[str, Any],
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    response = _get(
        gateway,
        "/api/v1/users/me",
        headers={
            "traceparent": traceparent,
            "tracestate": "vendor=1",
            "X-Request-ID": "traced-request-0001",
        },
    )
    seen = response.json()["headers"]
    assert (seen["traceparent"], seen["tracestate"]) == (traceparent, "vendor=1")
    _get(gateway, "/api/v1/users/me", headers={"X-Request-ID": "untraced-request-0001"})
    _get(
        gateway,
        "/api/v1/users/me",
        headers={"traceparent": "not-a-traceparent", "X-Request-ID": "badly-traced-0001"},
    )
    ours = ("traced-request-0001", "untraced-request-0001", "badly-traced-0001")
    logged: dict[str, str] = {}
    deadline = time.monotonic() + 5
    while len(logged) < len(ours) and time.monotonic() < deadline:
        for line in (gateway["state"] / "access.log").read_text().splitlines():
            entry = json.loads(line)
            if entry["request_id"] in ours:
                logged[entry["request_id"]] = entry["trace_id"]
        time.sleep(0.05)
    assert logged == {
        "traced-request-0001": trace_id,
        "untraced-request-0001": "-",
        "badly-traced-0001": "-",
    }


def test_forwarding_headers_cannot_be_spoofed(gateway: dict[str, Any]) -> None:
    headers = {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6"}
    seen = _get(gateway, "/api/v1/users/me", headers=headers).json()["headers"]
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-real-ip"] == "127.0.0.1"


def test_bodies_over_the_limit_get_413_problem(gateway: dict[str, Any]) -> None:
    response = httpx.post(
        gateway["http"] + "/api/v1/orders", content=b"x" * (2 * 1024 * 1024), timeout=10
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_auth_zone_limits_bursts_with_429_problem(gateway: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=gateway["http"], timeout=5) as client:
        responses = await asyncio.gather(
            *(client.post("/api/v1/auth/otp/send", json={}) for _ in range(30))
        )
    limited = [r for r in responses if r.status_code == 429]
    passed = [r for r in responses if r.status_code == 200]
    assert 1 <= len(passed) <= 7  # burst 5 plus what the rate refills meanwhile
    assert len(limited) == 30 - len(passed)
    assert limited[0].headers["retry-after"] == "1"
    assert limited[0].json()["code"] == "rate_limited"
    # Other routes are not in the auth zone.
    assert _get(gateway, "/api/v1/products/0193").status_code == 200


def test_a_service_that_is_down_is_a_fast_503_problem(gateway: dict[str, Any]) -> None:
    started = time.monotonic()
    response = _get(gateway, "/api/v1/orders")
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["code"] == "service_unavailable"


def test_security_headers_and_no_hsts_on_plain_http(gateway: dict[str, Any]) -> None:
    response = _get(gateway, "/api/v1/users/me")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "strict-transport-security" not in response.headers
    assert "server" not in response.headers or "nginx/" not in response.headers["server"]


def test_tls_is_modern_and_sends_hsts(gateway: dict[str, Any]) -> None:
    response = httpx.get(gateway["https"] + "/health/auth", verify=False, timeout=5)  # noqa: S501
    assert response.json()["path"] == "/health/ready"
    assert response.headers["strict-transport-security"].startswith("max-age=63072000")
    # TLS 1.2 clients get an ECDHE AEAD suite; older protocols are not configured at all.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    port = int(gateway["https"].rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        name, version, _ = tls.cipher()  # type: ignore[misc]
    assert version == "TLSv1.2"
    assert name.startswith("ECDHE-")
    assert "GCM" in name or "CHACHA20" in name
    conf = (gateway["state"] / "nginx.conf").read_text()
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf


async def test_websocket_upgrade_reaches_the_ws_gateway(gateway: dict[str, Any]) -> None:
    url = gateway["http"].replace("http://", "ws://") + "/ws"
    async with websockets.connect(url, open_timeout=5) as socket:
        assert await asyncio.wait_for(socket.recv(), 5) == "hello from ws-gateway"


def test_admin_page_is_served_with_a_strict_policy(gateway: dict[str, Any]) -> None:
    response = _get(gateway, "/admin/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "connect-src 'self' ws: wss:" in response.headers["content-security-policy"]
    assert _get(gateway, "/admin").status_code == 301


def test_the_compose_rendering_is_committed_and_current() -> None:
    committed = nginx.COMPOSE_CONFIG.read_text()
    assert committed == nginx.compose_config(), (
        "gateway/nginx/compose/nginx.conf is stale: run `python -m storefront_stack render-gateway`"
    )
    assert "server auth:8000 max_fails=1 fail_timeout=5s resolve;" in committed
    # Compose's local profile is make run's: the stand-ins under /sandbox/<name>/.
    for sandbox in ("telegram", "payments", "shipping", "sentry"):
        assert f"location /sandbox/{sandbox}/ {{" in committed
        assert f"proxy_pass http://sandbox-{sandbox}:8000/;" in committed
    assert "daemon off" not in committed  # the official image passes it on the command line
    # nginx >= 1.25.1 deprecates `listen ... http2`.
    assert "http2 on;" in committed
    assert not re.search(r"^\s*listen\b[^;]*\bhttp2\b", committed, re.M)
    production = nginx.COMPOSE_PRODUCTION_CONFIG.read_text()
    assert production == nginx.compose_config(standins=False), (
        "gateway/nginx/compose/nginx.production.conf is stale: "
        "run `python -m storefront_stack render-gateway`"
    )
    assert "/sandbox/" not in production  # no stand-ins in the production-shaped stack


def test_idempotent_requests_move_to_another_replica_and_posts_never_do() -> None:
    for rendering in (
        nginx.compose_config(),
        nginx.render_config(
            nginx.GatewayConfig(upstreams={x.name: ["127.0.0.1:1"] for x in SERVICES})
        ),
    ):
        directive = re.search(r"^\s*proxy_next_upstream\s+([^;]+);", rendering, re.M)
        assert directive, "no proxy_next_upstream"
        conditions = directive[1].split()
        assert {"error", "timeout", "http_502", "http_503", "http_504"} <= set(conditions)
        assert "non_idempotent" not in conditions


def test_replicas_share_the_upstream_and_the_internal_listener(tmp_path: Path) -> None:
    """Two live replicas and a dead one (``<SERVICE>_REPLICAS`` in the local runner)."""
    upstreams = Upstreams(["orders-a", "orders-b"])
    dead = free_port()
    binary = nginx.ensure_nginx()
    worker_user = nginx.prepare_local(tmp_path / "temp")
    http_port, internal_port = free_port(), free_port()
    replicas = [f"127.0.0.1:{upstreams.ports[n]}" for n in ("orders-a", "orders-b")]
    config = nginx.GatewayConfig(
        upstreams={
            s.name: [f"127.0.0.1:{dead}", *replicas] if s.name == "orders" else ["127.0.0.1:1"]
            for s in SERVICES
        },
        internal_listeners={"orders": internal_port},
        http_port=http_port,
        https_port=None,
        temp_dir=str(tmp_path / "temp"),
        worker_user=worker_user,
        worker_processes="1",
    )
    conf = tmp_path / "nginx.conf"
    process = _run_nginx(binary, nginx.render_config(config), tmp_path, http_port)
    try:
        public = [
            httpx.get(f"http://127.0.0.1:{http_port}/api/v1/orders", timeout=5) for _ in range(8)
        ]
        inside = [
            httpx.post(f"http://127.0.0.1:{internal_port}/internal/x", json={}, timeout=5)
            for _ in range(8)
        ]
        # The dead replica costs a retry, never an error (a refused connect sent nothing,
        # so even a POST moves on); both live replicas take turns.
        for answers in (public, inside):
            assert [r.status_code for r in answers] == [200] * 8
            assert {r.json()["upstream"] for r in answers} == {"orders-a", "orders-b"}
        assert {r.json()["path"] for r in inside} == {"/internal/x"}
        # The internal listener is loopback only and not the public server.
        assert f"listen 127.0.0.1:{internal_port};" in conf.read_text()
    finally:
        process.stop()
        upstreams.stop()


def test_unknown_upstream_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown services"):
        nginx.render_config(nginx.GatewayConfig(upstreams={"billing": ["x:1"]}))


# --- every answer nginx makes itself is a problem ------------------------------------------

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
    "cross-origin-opener-policy": "same-origin",
    "content-security-policy": nginx.API_CSP,
}


def _raw(gateway: dict[str, Any], request: bytes) -> tuple[int, dict[str, list[str]], bytes]:
    """Send bytes as they are on a fresh socket; nginx's status, headers and body."""
    port = int(gateway["http"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(request)
        raw.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := raw.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    length = int(headers.get("content-length", ["-1"])[0])
    return int(status_line.split(" ")[1]), headers, body[:length] if length >= 0 else body


def _assert_problem(
    status: int, headers: dict[str, list[str]], body: bytes, *, expected: int, code: str
) -> dict[str, Any]:
    assert status == expected, body
    assert headers["content-type"] == ["application/problem+json"]
    problem: dict[str, Any] = json.loads(body)
    assert problem["status"] == expected
    assert problem["code"] == code
    assert problem["type"] == "https://storefront.dev/problems/" + code.replace("_", "-")
    assert problem["title"]
    (request_id,) = headers["x-request-id"]
    assert problem["request_id"] == request_id
    assert len(request_id) >= 8
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == [value], name
    assert "upstream" not in problem  # answered by nginx, not passed on from a service
    return problem


def _assert_response_problem(response: httpx.Response, *, expected: int, code: str) -> None:
    headers = {name: response.headers.get_list(name) for name in response.headers}
    _assert_problem(response.status_code, headers, response.content, expected=expected, code=code)


@pytest.mark.parametrize(
    ("request_bytes", "expected", "code"),
    [
        pytest.param(
            b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Content-Length: 6\r\n\r\nhello!",
            400,
            "bad_request",
            id="two-content-lengths",
        ),
        pytest.param(
            b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
            "bad_request",
            id="length-and-chunked",
        ),
        pytest.param(
            b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nhello\r\n0\r\n\r\n",
            400,
            "bad_request",
            id="bad-chunk-size",
        ),
        pytest.param(
            b"\x16\x03\x01\x02\x00\x01\r\n\r\n", 400, "bad_request", id="tls-on-plain-port"
        ),
        pytest.param(
            b"GET /api/v1/products/%00 HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            "bad_request",
            id="nul-in-path",
        ),
        pytest.param(
            b"GET /api/v1/users/me HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n",
            400,
            "bad_request",
            id="header-without-colon",
        ),
        pytest.param(
            b"GET /api/v1/users/me HTTP/1.1\r\n\r\n", 400, "bad_request", id="http11-without-host"
        ),
        pytest.param(
            b"GET /api/v1/users/me HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n",
            431,
            "request_header_too_large",
            id="40kB-header",
        ),
        pytest.param(
            b"GET /api/v1/products/search?q=" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            414,
            "uri_too_long",
            id="20kB-uri",
        ),
        pytest.param(
            b"TRACE /api/v1/users/me HTTP/1.1\r\nHost: x\r\n\r\n",
            405,
            "method_not_allowed",
            id="trace",
        ),
        pytest.param(
            b"POST /admin/index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            405,
            "method_not_allowed",
            id="post-to-a-static-file",
        ),
        pytest.param(
            b"GET /admin/no-such-file.js HTTP/1.1\r\nHost: x\r\n\r\n",
            404,
            "not_found",
            id="missing-static-file",
        ),
        pytest.param(
            b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
            "not_implemented",
            id="unknown-transfer-coding",
        ),
        pytest.param(
            b"GET /api/v1/users/me HTTP/2.0\r\nHost: x\r\n\r\n",
            505,
            "http_version_not_supported",
            id="http2-over-plain-http1-framing",
        ),
    ],
)
def test_requests_nginx_refuses_get_problems_with_request_id_and_security_headers(
    gateway: dict[str, Any], request_bytes: bytes, expected: int, code: str
) -> None:
    status, headers, body = _raw(gateway, request_bytes)
    _assert_problem(status, headers, body, expected=expected, code=code)


def test_a_refused_request_keeps_the_callers_request_id(gateway: dict[str, Any]) -> None:
    status, headers, body = _raw(
        gateway,
        b"TRACE /api/v1/users/me HTTP/1.1\r\nHost: x\r\nX-Request-ID: client-trace-0001\r\n\r\n",
    )
    problem = _assert_problem(status, headers, body, expected=405, code="method_not_allowed")
    assert problem["request_id"] == "client-trace-0001"


def test_the_edge_limit_413_429_and_a_down_service_are_problems_with_all_headers(
    gateway: dict[str, Any],
) -> None:
    too_big = httpx.post(
        gateway["http"] + "/api/v1/orders", content=b"x" * (2 * 1024 * 1024), timeout=10
    )
    _assert_response_problem(too_big, expected=413, code="payload_too_large")
    down = _get(gateway, "/api/v1/orders")
    _assert_response_problem(down, expected=503, code="service_unavailable")
    assert down.headers["retry-after"] == "5"
    unknown = httpx.request("OPTIONS", gateway["http"] + "/api/v2/x", timeout=5)
    _assert_response_problem(unknown, expected=404, code="not_found")


async def test_the_auth_zones_429_has_all_headers(gateway: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=gateway["http"], timeout=5) as client:
        responses = await asyncio.gather(
            *(client.post("/api/v1/auth/otp/verify", json={}) for _ in range(20))
        )
    limited = [r for r in responses if r.status_code == 429]
    assert limited
    _assert_response_problem(limited[0], expected=429, code="rate_limited")
    assert limited[0].headers["retry-after"] == "1"


def test_tls_errors_are_problems_with_hsts(gateway: dict[str, Any]) -> None:
    response = httpx.request(
        "TRACE",
        gateway["https"] + "/api/v1/users/me",
        verify=False,  # noqa: S501 (the gateway's self-signed certificate)
        timeout=5,
    )
    _assert_response_problem(response, expected=405, code="method_not_allowed")
    assert response.headers["strict-transport-security"].startswith("max-age=63072000")
    plain = httpx.get(gateway["https"].replace("https://", "http://") + "/", timeout=5)
    _assert_response_problem(plain, expected=400, code="bad_request")


@pytest.mark.parametrize("host", ["evil.example", "evil.example:666"])
def test_redirects_never_name_the_callers_host(gateway: dict[str, Any], host: str) -> None:
    response = _get(gateway, "/admin", headers={"Host": host})
    assert response.status_code == 301
    assert response.headers["location"] == "/admin/"


def test_an_upstream_that_does_not_answer_in_time_is_a_504_problem(tmp_path: Path) -> None:
    # A socket that listens and never answers; the rendering waits 1 s for it, not 30 s.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    binary = nginx.ensure_nginx()
    worker_user = nginx.prepare_local(tmp_path / "temp")
    port = free_port()
    config = nginx.GatewayConfig(
        upstreams={s.name: [f"127.0.0.1:{silent.getsockname()[1]}"] for s in SERVICES},
        http_port=port,
        https_port=None,
        temp_dir=str(tmp_path / "temp"),
        worker_user=worker_user,
    )
    rendered = nginx.render_config(config)
    assert "proxy_read_timeout 30s;" in rendered
    shortened = rendered.replace("proxy_read_timeout 30s;", "proxy_read_timeout 1s;")
    process = _run_nginx(binary, shortened, tmp_path, port)
    try:
        gateway = {"http": f"http://127.0.0.1:{port}"}
        response = httpx.get(gateway["http"] + "/api/v1/users/me", timeout=10)
        _assert_response_problem(response, expected=504, code="gateway_timeout")
    finally:
        process.stop()
        silent.close()
