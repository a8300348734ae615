"""`make env && docker compose up --build`, followed as the README says, on a real engine.

Builds the images, brings the stack up from a freshly generated .env (its own project
name, the gateway on free loopback ports), walks the README's session through the
compose gateway (the seeded admin's login through the Telegram stand-in, a search with
a typo, a checkout to CONFIRMED, the receipt in the chat, the order's status over
/ws), then scales orders and catalog to two replicas and back under a steady stream
of requests of which none may fail, and tears everything down (``down -v``).

Needs a Docker engine: the one that answers, or ``shared/container-engine/provision``
beside the checkout (run as root; CI runs it before ``make test``). Skipped, saying so,
only where neither can be had. Select it with ``-m compose``.
"""

import asyncio
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.typing import Subprotocol

from storefront_stack.envfile import write_env
from storefront_stack.infra import ensure_elasticsearch
from storefront_stack.platform import wait_ready_through
from storefront_stack.topology import CALLERS

# Building the images the first time takes longer than the suite's 300 s per test.
pytestmark = [pytest.mark.compose, pytest.mark.slow, pytest.mark.timeout(2700)]

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN_PHONE = "+15550000001"  # the seed's defaults, as in the README
ADMIN_CHAT_ID = 1000001
CODE = re.compile(r"\b(\d{6})\b")
DEADLINE_S = 60.0
UP_TIMEOUT_S = 1800  # a first build downloads every wheel
# The gateway on free loopback ports: 8080/8443 may be taken by `make run` or another stack.
PORTS_OVERRIDE = """\
services:
  nginx:
    ports: !override
      - "127.0.0.1::8080"
      - "127.0.0.1::8443"
"""


def _provision_script() -> Path | None:
    """``shared/container-engine/provision`` beside the checkout (or named by the env)."""
    named = os.environ.get("STOREFRONT_ENGINE_PROVISION")
    candidates = [Path(named)] if named else []
    candidates += [
        parent / "shared" / "container-engine" / "provision" for parent in REPO_ROOT.parents
    ]
    return next((path for path in candidates if path.is_file()), None)


def _engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=60)
    return result.returncode == 0


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Compose files to add for this machine; provisions the engine when it can."""
    provision = _provision_script()
    if provision is not None and os.geteuid() == 0:
        # Idempotent and fast once cached: starts dockerd if needed, builds the stand-ins
        # of the base images the project names (Elasticsearch's from the distribution
        # the runner keeps in .stack/cache, which provision expects to find there).
        ensure_elasticsearch(REPO_ROOT / ".stack" / "cache")
        log = tmp_path_factory.mktemp("engine") / "provision.log"
        with log.open("w") as out:
            done = subprocess.run(
                [str(provision), str(REPO_ROOT)], stdout=out, stderr=subprocess.STDOUT, check=False
            )
        assert done.returncode == 0, f"provisioning the engine failed:\n{log.read_text()[-3000:]}"
    if not _engine_answers():
        pytest.skip(
            "no Docker engine: `docker info` does not answer and "
            + (
                "this user is not root (run shared/container-engine/provision as root)"
                if provision is not None
                else "shared/container-engine/provision is not beside this checkout"
            )
        )
    if provision is None:
        return []
    override = subprocess.run(
        [str(provision), "--override"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return ["-f", override] if override and Path(override).is_file() else []


def _buildx_config_dir(workdir: Path) -> dict[str, str]:
    """Environment that gives compose a buildx it accepts (BuildKit builds).

    A buildx built from its Go module without the release's linker flags reports
    ``v0.0.0+unknown``, and compose then refuses to build ("requires buildx 0.17.0 or
    later"). Machine-only: a DOCKER_CONFIG whose buildx plugin reports the version it
    was built from and otherwise is the same binary. Nothing when buildx is fine.
    """
    plugins = Path.home() / ".docker" / "cli-plugins"
    buildx = plugins / "docker-buildx"
    if not buildx.is_file():
        return {}
    metadata = subprocess.run(
        [str(buildx), "docker-cli-plugin-metadata"], capture_output=True, text=True, check=False
    ).stdout
    if "v0.0.0" not in metadata:
        return {}
    version = os.environ.get("BUILDX_VERSION", "v0.38.2")  # what provision builds
    config = workdir / "docker-config"
    (config / "cli-plugins").mkdir(parents=True)
    for plugin in plugins.iterdir():
        if plugin.name != "docker-buildx":
            (config / "cli-plugins" / plugin.name).symlink_to(plugin)
    wrapper = config / "cli-plugins" / "docker-buildx"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = docker-cli-plugin-metadata ]; then\n'
        f'  "{buildx}" "$@" | sed "s/v0.0.0+unknown/{version}/"\n'
        "else\n"
        f'  exec "{buildx}" "$@"\n'
        "fi\n"
    )
    wrapper.chmod(0o755)
    return {"DOCKER_CONFIG": str(config)}


@dataclass
class Stack:
    """One compose project of this test."""

    command: list[str]
    log: Path
    gateway: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def environ(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def compose(self, *args: str, timeout: float = 600) -> str:
        with self.log.open("a") as out:
            out.write(f"\n$ docker compose {' '.join(args)}\n")
            out.flush()
            result = subprocess.run(
                [*self.command, *args],
                stdout=subprocess.PIPE,
                stderr=out,
                text=True,
                check=False,
                timeout=timeout,
                cwd=REPO_ROOT,
                env=self.environ,
            )
            out.write(result.stdout)
        if result.returncode != 0:
            logs = subprocess.run(
                [*self.command, "logs", "--no-color", "--tail", "40"],
                capture_output=True,
                text=True,
                check=False,
                cwd=REPO_ROOT,
                env=self.environ,
            ).stdout
            tail = self.log.read_text()[-4000:]
            pytest.fail(f"docker compose {' '.join(args)} failed:\n{tail}\n--- logs ---\n{logs}")
        return result.stdout

    def replicas(self, service: str) -> list[dict[str, Any]]:
        out = self.compose("ps", "--format", "json", service)
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        if len(rows) == 1 and isinstance(rows[0], list):  # older compose: one JSON array
            rows = rows[0]
        return rows


@pytest.fixture(scope="module")
def stack(engine: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack up from a fresh `make env`, torn down with `down -v` whatever happens."""
    workdir = tmp_path_factory.mktemp("compose")
    env_file = workdir / ".env"
    assert write_env(env_file, REPO_ROOT / ".env.example")  # what `make env` writes
    ports = workdir / "ports.yml"
    ports.write_text(PORTS_OVERRIDE)
    project = f"sfci{os.getpid()}"
    command = [
        "docker", "compose", "-p", project, "--project-directory", str(REPO_ROOT),
        "--env-file", str(env_file), "-f", str(REPO_ROOT / "docker-compose.yml"),
        *engine, "-f", str(ports),
    ]  # fmt: skip
    stack = Stack(command, workdir / "compose.log", env=_buildx_config_dir(workdir))
    try:
        stack.compose("config", "--quiet")
        stack.compose("up", "--build", "--detach", timeout=UP_TIMEOUT_S)
        port = stack.compose("port", "nginx", "8080").strip().rsplit(":", 1)[1]
        stack.gateway = f"http://127.0.0.1:{port}"
        _wait_ready(stack.gateway)
        yield stack
    finally:
        # What every container said, kept beside the compose log for a failure's autopsy.
        with (workdir / "containers.log").open("w") as out:
            subprocess.run(
                [*command, "logs", "--no-color", "--timestamps"],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
                cwd=REPO_ROOT,
                env=stack.environ,
            )
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "30")
        leftovers = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        assert not leftovers, f"down -v left containers behind: {leftovers}"


def _wait_ready(gateway: str) -> None:
    """Every service ready through the gateway (`up` returned once nginx started)."""
    try:
        wait_ready_through(gateway, timeout=300, interval=1, request_timeout=5)
    except TimeoutError as exc:
        pytest.fail(f"the compose stack is {exc}")


# --- the README's walkthrough ------------------------------------------------------------


async def _messages(client: httpx.AsyncClient, chat_id: int) -> list[str]:
    response = await client.get("/sandbox/telegram/messages", params={"chat_id": chat_id})
    assert response.status_code == 200, response.text
    return [message["text"] for message in response.json()]


async def _new_message(client: httpx.AsyncClient, chat_id: int, seen: int) -> str:
    """The first message after the ``seen`` ones (polls to a deadline)."""
    async with asyncio.timeout(DEADLINE_S):
        while len(texts := await _messages(client, chat_id)) <= seen:
            await asyncio.sleep(0.3)
    return texts[seen]


async def _login_seeded_admin(client: httpx.AsyncClient) -> str:
    """README steps 1-3: the seeded admin's chat is linked, so the code goes straight there."""
    seen = len(await _messages(client, ADMIN_CHAT_ID))
    sent = await client.post("/api/v1/auth/otp/send", json={"phone": ADMIN_PHONE})
    assert sent.status_code == 202, sent.text
    text = await _new_message(client, ADMIN_CHAT_ID, seen)
    code = CODE.search(text)
    assert code, text
    verified = await client.post(
        "/api/v1/auth/otp/verify", json={"phone": ADMIN_PHONE, "code": code[1]}
    )
    assert verified.status_code == 200, verified.text
    return str(verified.json()["access_token"])


async def _search(client: httpx.AsyncClient, min_total: int = 1, **params: Any) -> dict[str, Any]:
    """A search that has hits, once the seeded catalogue has reached the index.

    Right after the seed, Elasticsearch (one node, 512 MB) is still indexing it and a
    search may time out as a 503 ``search_unavailable``; it must settle to 200.
    """
    async with asyncio.timeout(DEADLINE_S * 2):
        while True:
            response = await client.get("/api/v1/products/search", params=params)
            if response.status_code == 503:
                assert response.json()["code"] == "search_unavailable", response.text
                await asyncio.sleep(1)
                continue
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            if body["total"] >= min_total:
                return body
            await asyncio.sleep(1)


async def test_the_readme_session_works_against_docker_compose_up(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=30) as client:
        token = await _login_seeded_admin(client)
        auth = {"Authorization": f"Bearer {token}"}
        me = await client.get("/api/v1/users/me", headers=auth)
        assert me.status_code == 200, me.text
        assert "admin" in me.json()["roles"]
        user_id = me.json()["id"]

        typo = await _search(client, q="wireles hedphones", size=3)
        assert any("Headphones" in item["name"] for item in typo["items"]), typo["items"]
        in_stock = await _search(client, in_stock="true", size=1)
        product = in_stock["items"][0]
        sku, price = product["sku"], product["price"]
        # The seed loaded 1,000 products, and their events all reach the index.
        await _search(client, min_total=1000, size=1)

        ws_url = stack.gateway.replace("http://", "ws://", 1) + "/ws"
        async with websockets.connect(
            ws_url, subprotocols=[Subprotocol("bearer"), Subprotocol(token)]
        ) as socket:
            welcome = json.loads(await socket.recv())
            assert (welcome["type"], welcome["user_id"]) == ("welcome", user_id)
            chat_seen = len(await _messages(client, ADMIN_CHAT_ID))
            ordered = await client.post(
                "/api/v1/orders",
                headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
                json={
                    "items": [{"sku": sku, "qty": 1}],
                    "shipping_address": {
                        "name": "Ada",
                        "line1": "1 Main St",
                        "city": "Berlin",
                        "postal_code": "10115",
                        "country": "DE",
                    },
                    "payment": {"method": "card", "token": "tok_sandbox_ok"},
                },
            )
            assert ordered.status_code in (201, 202), ordered.text
            order_id = ordered.json()["id"]
            async with asyncio.timeout(DEADLINE_S):
                while True:
                    push = json.loads(await socket.recv())
                    data = push.get("data", {})
                    if data.get("order_id") == order_id and data.get("status") == "CONFIRMED":
                        break
        order = await client.get(f"/api/v1/orders/{order_id}", headers=auth)
        assert order.json()["status"] == "CONFIRMED", order.text
        # The receipt reaches the Telegram chat with the order's total, written as the
        # notifications templates write money (thousands separated: "1,234.56").
        total = f"{price // 100:,}.{price % 100:02d}"
        async with asyncio.timeout(DEADLINE_S):
            while not any(
                total in text for text in (await _messages(client, ADMIN_CHAT_ID))[chat_seen:]
            ):
                await asyncio.sleep(0.3)

        # The stand-ins answer under /sandbox/<name>/, as with `make run`.
        ledger = await client.get("/sandbox/payments/ledger")
        assert ledger.status_code == 200, ledger.text


# --- scaling out and back in --------------------------------------------------------------


class SteadyStream:
    """Idempotent requests through the gateway, one after another, until stopped."""

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self.stop = threading.Event()
        self.outcomes: list[tuple[str, int | str]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        paths = ["/api/v1/products/search?q=lamp&size=5", "/health/orders", "/health/catalog"]
        with httpx.Client(base_url=self.gateway, timeout=30) as client:
            index = 0
            while not self.stop.is_set():
                path = paths[index % len(paths)]
                index += 1
                try:
                    status: int | str = client.get(path).status_code
                except httpx.HTTPError as exc:
                    status = repr(exc)
                self.outcomes.append((path, status))
                time.sleep(0.05)

    def __enter__(self) -> "SteadyStream":
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)

    @property
    def failures(self) -> list[tuple[str, int | str]]:
        return [outcome for outcome in self.outcomes if outcome[1] != 200]


def _wait_replicas(stack: Stack, service: str, count: int) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        rows = stack.replicas(service)
        healthy = [row for row in rows if row.get("Health") == "healthy"]
        if len(rows) == count and len(healthy) == count:
            return
        time.sleep(1)
    pytest.fail(f"{service}: expected {count} healthy replicas, have {stack.replicas(service)}")


def test_scaling_out_and_back_in_loses_no_request(stack: Stack) -> None:
    scaled = ("orders", "catalog")
    with SteadyStream(stack.gateway) as stream:
        time.sleep(2)
        stack.compose(
            "up", "--detach", "--no-deps", "--no-recreate",
            *(arg for name in scaled for arg in ("--scale", f"{name}=2")), *scaled,
        )  # fmt: skip
        for name in scaled:
            _wait_replicas(stack, name, 2)
        during = len(stream.outcomes)
        time.sleep(8)  # nginx re-resolves the names (5 s) and spreads over both replicas
        stack.compose(
            "up", "--detach", "--no-deps", "--no-recreate",
            *(arg for name in scaled for arg in ("--scale", f"{name}=1")), *scaled,
        )  # fmt: skip
        for name in scaled:
            _wait_replicas(stack, name, 1)
        time.sleep(8)  # past the removed replicas' DNS validity
    assert len(stream.outcomes) > during > 0, "the stream did not run through the scaling"
    assert not stream.failures, (
        f"{len(stream.failures)} of {len(stream.outcomes)} failed: {stream.failures[:5]}"
    )


# --- placeholder secrets ---------------------------------------------------------------


def test_placeholder_secrets_stop_the_stack_naming_the_variable(
    engine: list[str], stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`.env.example` copied as is never comes up, and says which variable is wrong.

    Compose itself refuses it (the callers' public keys are unset there); given those,
    the first service to start refuses its placeholder key and its log names it.
    """
    monkeypatch.setenv("STOREFRONT_ENVIRONMENT", "development")  # what compose runs
    project = f"sfci{os.getpid()}ph"
    command = [
        "docker", "compose", "-p", project, "--project-directory", str(REPO_ROOT),
        "--env-file", str(REPO_ROOT / ".env.example"),
        "-f", str(REPO_ROOT / "docker-compose.yml"), *engine,
    ]  # fmt: skip

    def compose(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            cwd=REPO_ROOT,
        )

    refused = compose("config", "--quiet", timeout=120)
    assert refused.returncode != 0, "compose accepted .env.example's placeholders"
    assert "SERVICE_TOKEN_CALLERS" in refused.stderr, refused.stderr
    assert "make env" in refused.stderr, refused.stderr
    for callee in CALLERS:  # every service with internal routes needs its callers' keys
        prefix = callee.upper().replace("-", "_")
        monkeypatch.setenv(f"{prefix}_SERVICE_TOKEN_CALLERS", "{}")
    try:
        started = compose("up", "--detach", "--wait", "--wait-timeout", "180", "auth", timeout=600)
        assert started.returncode != 0, "compose came up with placeholder secrets"
        logs = compose("logs", "--no-color", "auth").stdout
        assert re.search(r"AUTH_JWT_SIGNING_KEY|AUTH_SERVICE_TOKEN_KEY", logs), (
            started.stderr + logs
        )
    finally:
        compose("down", "--volumes", "--remove-orphans", "--timeout", "10")
