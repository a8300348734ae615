"""Start and stop the whole platform: infrastructure, sandboxes, six services, nginx."""

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from storefront_kit.cli import KEEP_ALIVE_TIMEOUT_S
from storefront_stack import infra
from storefront_stack.keys import (
    field_encryption_env,
    load_or_create_key,
    load_or_create_secret,
    service_token_env,
)
from storefront_stack.processes import ManagedProcess, PidRegistry, free_port
from storefront_stack.topology import (
    DATABASES,
    SANDBOXES,
    SERVICES,
    Endpoints,
    Service,
    only_shared,
    orders_databases,
    orders_databases_from,
    replicas_from,
    service_env,
)

__all__ = ["REPO_ROOT", "Platform", "PlatformOptions", "running_platform", "wait_ready_through"]

REPO_ROOT = Path(__file__).resolve().parents[4]


@dataclass
class PlatformOptions:
    """How to run the platform: fixed ports for ``make run``, free ones for tests."""

    state_dir: Path
    free_ports: bool = False
    database_url: str | None = None  # external PostgreSQL server instead of embedded
    redis_url: str | None = None
    elasticsearch_url: str | None = None
    log_to_files: bool = False
    fast_unsafe_db: bool = False
    http_port: int = 8080
    https_port: int = 8443
    env_overrides: dict[str, str] = field(default_factory=dict)
    #: Processes per service (``<SERVICE>_REPLICAS``); a service not named runs one.
    replicas: dict[str, int] = field(default_factory=dict)
    #: Databases orders' users are split over (``ORDERS_DATABASES``): ``orders``,
    #: ``orders_2``..., each migrated, named to orders in ``ORDERS_DATABASE_SHARDS``.
    orders_databases: int = 1
    #: Export traces to the OTLP stand-in (``make run``, the test platform); off, the
    #: services install nothing of OpenTelemetry (benchmarks compare like with like).
    #: A ``STOREFRONT_OTLP_ENDPOINT`` in the environment or the overrides wins either way.
    tracing: bool = False
    echo: Callable[[str, str], None] | None = None

    @classmethod
    def for_tests(cls, state_dir: Path, **options: Any) -> "PlatformOptions":
        """How tests and benchmarks run a platform of their own: free ports, logs to
        files, a fast (unsafe) database; ``options``: the rest."""
        return cls(
            state_dir=state_dir, free_ports=True, log_to_files=True, fast_unsafe_db=True, **options
        )


def wait_ready_through(
    gateway_url: str, *, timeout: float, interval: float = 0.5, request_timeout: float = 3
) -> dict[str, int]:
    """Wait until ``GET /health/<service>`` through the gateway at ``gateway_url`` is 200
    for every service: their statuses; a ``TimeoutError`` naming them when ``timeout``
    ends first."""
    statuses: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=gateway_url, timeout=request_timeout) as client:
        while time.monotonic() < deadline:
            for service in SERVICES:
                try:
                    statuses[service.name] = client.get(f"/health/{service.name}").status_code
                except httpx.HTTPError:
                    statuses[service.name] = 0
            if all(code == 200 for code in statuses.values()):
                return statuses
            time.sleep(interval)
    raise TimeoutError(f"not ready through the gateway: {statuses}")


@contextlib.contextmanager
def running_platform(options: PlatformOptions) -> Iterator["Platform"]:
    """A platform started with ``options`` for the block (a test module's, say), stopped
    however the block ends."""
    platform = Platform(options)
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()


class Platform:
    """Everything one run started, so it can be stopped (in reverse) or poked by tests."""

    def __init__(self, options: PlatformOptions) -> None:
        self.options = options
        self.state_dir = options.state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.registry = PidRegistry(self.state_dir / "pids.json")
        self.servers: list[infra.Server] = []
        self.processes: dict[str, ManagedProcess] = {}
        self.endpoints: Endpoints | None = None
        self.platform_env: dict[str, str] = {}

    # --- infrastructure -------------------------------------------------------------

    def _log(self, name: str) -> Path | None:
        return self.state_dir / "logs" / f"{name}.log" if self.options.log_to_files else None

    def start_infrastructure(self) -> Endpoints:
        """PostgreSQL, Redis and Elasticsearch: embedded unless URLs name external ones."""
        opts = self.options
        self.registry.kill_leftovers()

        def port(default: int) -> int:
            return free_port() if opts.free_ports else default

        # Started from this thread, one after the other: a child's PDEATHSIG is tied to the
        # thread that forked it, so a worker thread's exit would take the server with it.
        # Elasticsearch dominates start-up (~15 s); the others add about a second.
        started: dict[str, str] = {}
        if not opts.elasticsearch_url:
            home = infra.ensure_elasticsearch(REPO_ROOT / ".stack" / "cache")
            self._track(
                started,
                "es",
                infra.start_elasticsearch(
                    home,
                    self.state_dir / "elasticsearch",
                    port(9200),
                    registry=self.registry,
                    log_file=self._log("elasticsearch"),
                ),
            )
        if not opts.database_url:
            self._track(
                started,
                "pg",
                infra.start_postgres(
                    self.state_dir / "postgres" / "data",
                    port(5432),
                    registry=self.registry,
                    log_file=self._log("postgres"),
                    fast_unsafe=opts.fast_unsafe_db,
                ),
            )
        if not opts.redis_url:
            self._track(
                started,
                "redis",
                infra.start_redis(
                    self.state_dir / "redis",
                    port(6379),
                    registry=self.registry,
                    log_file=self._log("redis"),
                    persistent=not opts.fast_unsafe_db,
                ),
            )
        self.endpoints = Endpoints(
            postgres_url=opts.database_url or started["pg"],
            redis_url=opts.redis_url or started["redis"],
            elasticsearch_url=opts.elasticsearch_url or started["es"],
            gateway_http_port=port(opts.http_port),
            gateway_https_port=port(opts.https_port),
        )
        return self.endpoints

    def _track(self, started: dict[str, str], name: str, server: infra.Server) -> None:
        self.servers.append(server)
        started[name] = server.url

    def prepare_databases(self) -> None:
        """One database per owning service, built by that service's migrations."""
        from storefront_kit.migrations import upgrade

        assert self.endpoints is not None
        extra = orders_databases(self.options.orders_databases)[1:]
        infra.create_databases(_server_url(self.endpoints.postgres_url), [*DATABASES, *extra])
        field_keys = self._field_keys()
        for service in SERVICES:
            if service.database:
                # A data migration encrypts existing rows: with the service's own keys.
                own = {k: v for k, v in field_keys.items() if k.startswith(service.env_prefix)}
                with _environ(own):
                    for database in self._databases_of(service):
                        upgrade(service.package, self.endpoints.database_url(database))

    def _databases_of(self, service: Service) -> list[str]:
        """The databases ``service`` owns: its one, or orders' shards."""
        if service.name == "orders":
            return orders_databases(self.options.orders_databases)
        return [service.database] if service.database else []

    # --- application processes ------------------------------------------------------

    def _field_keys(self) -> dict[str, str]:
        """The services' field-encryption keys, kept under the state directory."""
        keys = self.state_dir / "keys"
        return field_encryption_env(
            key_for=lambda name, purpose: load_or_create_secret(keys / f"{name}-{purpose}-key")
        )

    def _platform_env(self) -> dict[str, str]:
        assert self.endpoints is not None
        keys = self.state_dir / "keys"
        gateway = self.endpoints
        origins = [
            f"http://localhost:{gateway.gateway_http_port}",
            f"https://localhost:{gateway.gateway_https_port}",
        ]
        return {
            "STOREFRONT_ENVIRONMENT": "development",
            "STOREFRONT_LOG_JSON": "true",
            "STOREFRONT_JWKS_URL": f"{gateway.service_url('auth')}/.well-known/jwks.json",
            "STOREFRONT_CORS_ALLOW_ORIGINS": json.dumps(origins),
            "STOREFRONT_PUBLIC_URL": gateway.gateway_url,
            "AUTH_JWT_SIGNING_KEY": load_or_create_key(keys / "auth-jwt.pem"),
            "AUTH_OTP_PEPPER": load_or_create_secret(keys / "otp-pepper"),
            # Telegram reaches the bot through the gateway, as it would in production.
            "NOTIFICATIONS_TELEGRAM_WEBHOOK_URL": f"{gateway.gateway_url}/api/v1/telegram/webhook",
            "NOTIFICATIONS_TELEGRAM_WEBHOOK_SECRET": load_or_create_secret(
                keys / "telegram-webhook-secret"
            ),
            "PYTHONUNBUFFERED": "1",
            # Error reports go to the Sentry stand-in and traces to the OTLP stand-in
            # (``service_env``) unless a DSN or a collector is exported in the runner's
            # own environment.
            **{
                name: os.environ[name]
                for name in (
                    "STOREFRONT_SENTRY_DSN",
                    "STOREFRONT_SENTRY_RELEASE",
                    "STOREFRONT_TRACE_SAMPLE_RATIO",
                )
                if os.environ.get(name)
            },
            **self._tracing_env(),
            # python-telegram-bot 22: retry_after as a timedelta (the int form is deprecated).
            "PTB_TIMEDELTA": "true",
            # Per service: its field-encryption keys, and only its own (``service_env``).
            **self._field_keys(),
            # One key per service; each process gets only its own (``service_env``).
            **service_token_env(
                [s.name for s in SERVICES],
                key_for=lambda name: load_or_create_key(keys / f"service-token-{name}.pem"),
            ),
        }

    def _tracing_env(self) -> dict[str, str]:
        """``STOREFRONT_OTLP_ENDPOINT`` as exported (empty: off), else none (``service_env``
        then points the services at the OTLP stand-in) with ``tracing``, else empty (off)."""
        if "STOREFRONT_OTLP_ENDPOINT" in os.environ:
            return {"STOREFRONT_OTLP_ENDPOINT": os.environ["STOREFRONT_OTLP_ENDPOINT"]}
        return {} if self.options.tracing else {"STOREFRONT_OTLP_ENDPOINT": ""}

    def start_applications(self) -> None:
        """The sandboxes, then the six services, each as its own uvicorn process."""
        assert self.endpoints is not None
        opts = self.options
        for sandbox in SANDBOXES:
            self.endpoints.sandbox_ports[sandbox.name] = (
                free_port() if opts.free_ports else sandbox.port
            )
        for service in SERVICES:
            # One replica listens on the service's port itself. Several listen on ports of
            # their own, and the service's port is the gateway's loopback listener that
            # balances over them (started with the gateway).
            self.endpoints.service_ports[service.name] = (
                free_port() if opts.free_ports else service.port
            )
            count = self.replica_count(service.name)
            self.endpoints.replica_ports[service.name] = (
                [free_port() for _ in range(count)]
                if count > 1
                else [self.endpoints.service_ports[service.name]]
            )
        self.platform_env = self._platform_env()
        for sandbox in SANDBOXES:
            self._start(
                f"sandbox-{sandbox.name}",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    f"{sandbox.module}:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.endpoints.sandbox_ports[sandbox.name]),
                    "--no-access-log",
                    # As the services are served: idle connections outlast the callers' expiry.
                    "--timeout-keep-alive",
                    str(KEEP_ALIVE_TIMEOUT_S),
                ],
                env=only_shared({**self.platform_env, **opts.env_overrides}),
            )
        for service in SERVICES:
            for name in self.replica_names(service.name):
                self.start_service(name)
        for name in [f"sandbox-{s.name}" for s in SANDBOXES] + [
            replica for s in SERVICES for replica in self.replica_names(s.name)
        ]:
            self._wait_live(name)

    def replica_count(self, service: str) -> int:
        """How many processes of ``service`` this platform runs."""
        return max(1, self.options.replicas.get(service, 1))

    def replica_names(self, service: str) -> list[str]:
        """Process names of ``service``: its own name, or ``<name>-1``... with replicas."""
        count = self.replica_count(service)
        return [service] if count == 1 else [f"{service}-{i}" for i in range(1, count + 1)]

    def _replica(self, name: str) -> tuple[Service, int]:
        """The service and the replica port of process ``name``."""
        assert self.endpoints is not None
        for service in SERVICES:
            names = self.replica_names(service.name)
            if name in names:
                ports = self.endpoints.replica_ports.get(service.name) or [
                    self.endpoints.service_ports[service.name]
                ]
                return service, ports[names.index(name)]
        raise KeyError(name)

    def service_env(self, name: str) -> dict[str, str]:
        """The environment service process ``name`` (a service or a replica) runs with."""
        assert self.endpoints is not None
        service, port = self._replica(name)
        env = service_env(
            service,
            self.endpoints,
            platform_env=self.platform_env,
            overrides=self.options.env_overrides,
            port=port,
        )
        databases = self._databases_of(service)
        if len(databases) > 1:
            env[f"{service.env_prefix}DATABASE_SHARDS"] = ",".join(
                self.endpoints.database_url(database) for database in databases
            )
        return env

    def start_service(self, name: str) -> ManagedProcess:
        """(Re)start one service process: a service's name, or a replica's (``orders-2``)."""
        service, _port = self._replica(name)
        return self._start(
            name,
            [sys.executable, "-m", service.package, "serve"],
            env=self.service_env(name),
        )

    def stop_service(self, name: str, *, kill: bool = False) -> None:
        """Stop one process, or every replica of a service (SIGKILL when ``kill``: a crash)."""
        names = [name] if name in self.processes else self.replica_names(name)
        for each in names:
            process = self.processes.pop(each, None)
            if process is not None:
                process.kill() if kill else process.stop()

    def _start(self, name: str, command: list[str], *, env: Mapping[str, str]) -> ManagedProcess:
        process = ManagedProcess(
            name,
            command,
            env=env,
            cwd=REPO_ROOT,
            registry=self.registry,
            log_file=self._log(name),
            echo=self.options.echo,
        ).start()
        self.processes[name] = process
        return process

    def _wait_live(self, name: str, timeout: float = 60) -> None:
        assert self.endpoints is not None
        if name.startswith("sandbox-"):
            url = self.endpoints.sandbox_url(name.removeprefix("sandbox-"))
        else:
            url = f"http://{self.endpoints.host}:{self._replica(name)[1]}"
        process = self.processes[name]

        def live() -> bool:
            if not process.running:
                raise infra.StartupFailed(f"{name} exited during start-up; see its log")
            return httpx.get(f"{url}/health/live", timeout=1).status_code == 200

        infra.wait_for(name, live, timeout=timeout)

    # --- gateway --------------------------------------------------------------------

    def start_gateway(self) -> None:
        """Nginx in front of everything, HTTP and HTTPS (self-signed)."""
        from storefront_stack import nginx

        assert self.endpoints is not None
        binary = nginx.ensure_nginx()
        gateway_dir = self.state_dir / "nginx"
        worker_user = nginx.prepare_local(gateway_dir / "temp")
        cert, key = nginx.write_self_signed_cert(gateway_dir / "certs")
        config = nginx.GatewayConfig(
            upstreams={
                s.name: [f"127.0.0.1:{port}" for port in self.endpoints.replica_ports[s.name]]
                for s in SERVICES
            },
            internal_listeners={
                s.name: self.endpoints.service_ports[s.name]
                for s in SERVICES
                if self.replica_count(s.name) > 1
            },
            sandbox_upstreams={
                s.name: f"127.0.0.1:{self.endpoints.sandbox_ports[s.name]}" for s in SANDBOXES
            },
            http_port=self.endpoints.gateway_http_port,
            https_port=self.endpoints.gateway_https_port,
            cert_file=str(cert),
            key_file=str(key),
            admin_root=str(REPO_ROOT / "gateway" / "nginx" / "admin"),
            temp_dir=str(gateway_dir / "temp"),
            access_log=str(gateway_dir / "access.log") if self.options.log_to_files else None,
            worker_user=worker_user,
            **_gateway_tunables(self.options.env_overrides),
        )
        conf_file = gateway_dir / "nginx.conf"
        conf_file.write_text(nginx.render_config(config))
        nginx.check_config(binary, conf_file, gateway_dir)
        self._start("nginx", nginx.nginx_command(binary, conf_file, gateway_dir), env={})
        port = self.endpoints.gateway_http_port
        infra.wait_for("gateway", lambda: _port_open(port), timeout=30)

    def wait_ready(self, timeout: float = 120) -> dict[str, int]:
        """Wait until ``GET /health/<service>`` through the gateway is 200 for all six."""
        assert self.endpoints is not None
        return wait_ready_through(self.endpoints.gateway_url, timeout=timeout)

    # --- whole platform -------------------------------------------------------------

    def start(self) -> Endpoints:
        """Everything, in dependency order; stops what started if a step fails."""
        try:
            self.start_infrastructure()
            self.prepare_databases()
            self.start_applications()
            self.start_gateway()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        assert self.endpoints is not None
        return self.endpoints

    def stop(self) -> None:
        """Stop everything this run started, newest first."""
        for name in reversed(list(self.processes)):
            self.processes.pop(name).stop()
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()


def _port_open(port: int) -> bool:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


def _server_url(url: str) -> str:
    return url.rsplit("/", 1)[0] if url.count("/") > 2 else url


def _gateway_tunables(env: Mapping[str, str]) -> dict[str, Any]:
    """Rate-limit settings of the gateway (``GATEWAY_*``), so tests can raise them."""
    tunables: dict[str, Any] = {}
    if "GATEWAY_AUTH_RATE" in env:
        tunables["auth_rate"] = env["GATEWAY_AUTH_RATE"]
    if "GATEWAY_AUTH_BURST" in env:
        tunables["auth_burst"] = int(env["GATEWAY_AUTH_BURST"])
    if "GATEWAY_SEARCH_RATE" in env:
        tunables["search_rate"] = env["GATEWAY_SEARCH_RATE"]
    if "GATEWAY_SEARCH_BURST" in env:
        tunables["search_burst"] = int(env["GATEWAY_SEARCH_BURST"])
    return tunables


def options_from_environment(state_dir: Path, **kwargs: object) -> PlatformOptions:
    """Options honouring ``DATABASE_URL``, ``REDIS_URL``, ``ELASTICSEARCH_URL`` and
    ``<SERVICE>_REPLICAS`` and ``ORDERS_DATABASES`` (the environment first, then ``.env``)."""
    environment = {**_dotenv(REPO_ROOT / ".env"), **os.environ}
    return PlatformOptions(
        state_dir=state_dir,
        database_url=os.environ.get("DATABASE_URL") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
        elasticsearch_url=os.environ.get("ELASTICSEARCH_URL") or None,
        replicas=replicas_from(environment),
        orders_databases=orders_databases_from(environment),
        **kwargs,  # type: ignore[arg-type]
    )


def _dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {name: value for name, value in dotenv_values(path).items() if value is not None}


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set for the block (in-process migrations read it)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
