"""What runs where: the six services, the sandboxes, their ports and environment.

This is the one place that knows how the services are wired to each other and to the
infrastructure; the local runner and the test harness both build on it.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "CALLERS",
    "DATABASES",
    "FIELD_ENCRYPTION",
    "SANDBOXES",
    "SENTRY_KEY",
    "SENTRY_PROJECT",
    "SERVICES",
    "Endpoints",
    "Sandbox",
    "Service",
    "only_shared",
    "replicas_from",
    "service_env",
]


@dataclass(frozen=True)
class Service:
    """One platform service."""

    name: str
    package: str
    port: int
    database: str | None = None
    elasticsearch: bool = False

    @property
    def env_prefix(self) -> str:
        return self.name.upper().replace("-", "_") + "_"


@dataclass(frozen=True)
class Sandbox:
    """A local stand-in for a third-party API."""

    name: str
    module: str
    port: int
    #: Whether services call it as an API (``<PREFIX><NAME>_API_URL``); the Sentry
    #: stand-in is reached through a DSN instead (``STOREFRONT_SENTRY_DSN``), the OTLP
    #: stand-in as the trace exporter's endpoint (``STOREFRONT_OTLP_ENDPOINT``).
    api: bool = True


SERVICES: tuple[Service, ...] = (
    Service("auth", "auth_service", 8101, database="auth"),
    Service("catalog", "catalog_service", 8102, elasticsearch=True),
    Service("inventory", "inventory_service", 8103, database="inventory"),
    Service("orders", "orders_service", 8104, database="orders"),
    Service("notifications", "notifications_service", 8105, database="notifications"),
    Service("ws-gateway", "ws_gateway_service", 8106),
)
SANDBOXES: tuple[Sandbox, ...] = (
    Sandbox("telegram", "storefront_sandbox.telegram", 8201),
    Sandbox("payments", "storefront_sandbox.payments", 8202),
    Sandbox("shipping", "storefront_sandbox.shipping", 8203),
    Sandbox("sentry", "storefront_sandbox.sentry", 8204, api=False),
    Sandbox("otlp", "storefront_sandbox.otlp", 8205, api=False),
)
#: The Sentry stand-in's DSN parts: any key is accepted; one project for the platform
#: (each event is tagged with its service).
SENTRY_KEY = "storefront"
SENTRY_PROJECT = 1
DATABASES = tuple(s.database for s in SERVICES if s.database)

#: Who calls whose ``/internal/*`` routes (callee -> callers): each callee is given these
#: callers' public keys (``<PREFIX>_SERVICE_TOKEN_CALLERS``) and nobody else's.
#: Services that store personal fields encrypted (docs/design.md §7), each with keys of its own:
#: ``<PREFIX>_ENCRYPTION_KEYS``, ``<PREFIX>_ENCRYPTION_KEY_ID``, ``<PREFIX>_BLIND_INDEX_KEY``.
FIELD_ENCRYPTION: tuple[str, ...] = ("auth", "orders", "notifications")

CALLERS: dict[str, tuple[str, ...]] = {
    "auth": ("notifications",),
    "inventory": ("catalog", "orders"),
    "notifications": ("auth",),
    "orders": ("auth",),
    "ws-gateway": ("auth",),
}


@dataclass
class Endpoints:
    """Where everything listens in one running platform."""

    postgres_url: str  # server URL, no database
    redis_url: str
    elasticsearch_url: str
    #: Where each service is reached: its one process, or, with several replicas, the
    #: gateway's loopback listener that balances over them (as a Kubernetes Service).
    service_ports: dict[str, int] = field(default_factory=dict)
    #: Each replica's own port (one entry per process; a single replica listens on
    #: ``service_ports[name]`` itself).
    replica_ports: dict[str, list[int]] = field(default_factory=dict)
    sandbox_ports: dict[str, int] = field(default_factory=dict)
    gateway_http_port: int = 8080
    gateway_https_port: int = 8443
    host: str = "127.0.0.1"

    def service_url(self, name: str) -> str:
        return f"http://{self.host}:{self.service_ports[name]}"

    def replica_urls(self, name: str) -> list[str]:
        """Each replica of service ``name``, addressed directly (not balanced)."""
        ports = self.replica_ports.get(name) or [self.service_ports[name]]
        return [f"http://{self.host}:{port}" for port in ports]

    def sandbox_url(self, name: str) -> str:
        return f"http://{self.host}:{self.sandbox_ports[name]}"

    def sentry_dsn(self, project: int = SENTRY_PROJECT) -> str:
        """The DSN of the Sentry stand-in (``http://<key>@<host>:<port>/<project>``)."""
        return f"http://{SENTRY_KEY}@{self.host}:{self.sandbox_ports['sentry']}/{project}"

    @property
    def gateway_url(self) -> str:
        return f"http://localhost:{self.gateway_http_port}"

    def database_url(self, database: str) -> str:
        base = self.postgres_url.rstrip("/")
        if base.count("/") > 2:  # an external URL that already names a database
            base = base.rsplit("/", 1)[0]
        return base.replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{database}"


def service_env(
    service: Service,
    endpoints: Endpoints,
    *,
    platform_env: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
    port: int | None = None,
) -> dict[str, str]:
    """The environment one service process starts with (``port``: a replica's own).

    Another service's settings (its secrets: ``AUTH_JWT_SIGNING_KEY``, each
    ``<PREFIX>_SERVICE_TOKEN_KEY``...) never reach this one.
    """
    prefix = service.env_prefix
    env = {
        **only_shared(platform_env, keep=prefix),
        f"{prefix}HOST": endpoints.host,
        f"{prefix}PORT": str(port or endpoints.service_ports[service.name]),
        f"{prefix}REDIS_URL": endpoints.redis_url,
    }
    if service.database:
        env[f"{prefix}DATABASE_URL"] = endpoints.database_url(service.database)
    if service.elasticsearch:
        env[f"{prefix}ELASTICSEARCH_URL"] = endpoints.elasticsearch_url
    # Who talks to whom (docs/design.md §1): base URLs of the services and sandboxes each
    # one calls.
    for other in SERVICES:
        if other.name != service.name and other.name in endpoints.service_ports:
            env[f"{prefix}{other.env_prefix}URL"] = endpoints.service_url(other.name)
    for sandbox in SANDBOXES:
        if sandbox.api and sandbox.name in endpoints.sandbox_ports:
            env[f"{prefix}{sandbox.name.upper()}_API_URL"] = endpoints.sandbox_url(sandbox.name)
    # Unhandled errors go to the Sentry stand-in unless a real DSN was configured.
    if "sentry" in endpoints.sandbox_ports and "STOREFRONT_SENTRY_DSN" not in env:
        env["STOREFRONT_SENTRY_DSN"] = endpoints.sentry_dsn()
    # Traces go to the OTLP stand-in unless a collector was configured.
    if "otlp" in endpoints.sandbox_ports and "STOREFRONT_OTLP_ENDPOINT" not in env:
        env["STOREFRONT_OTLP_ENDPOINT"] = endpoints.sandbox_url("otlp")
    env.update(only_shared(overrides or {}, keep=prefix))
    if port is not None:
        env[f"{prefix}PORT"] = str(port)
    return env


def replicas_from(env: Mapping[str, str]) -> dict[str, int]:
    """``<SERVICE>_REPLICAS`` of each service named in ``env`` (default 1, at least 1)."""
    counts: dict[str, int] = {}
    for service in SERVICES:
        raw = env.get(f"{service.env_prefix}REPLICAS", "").strip()
        if not raw:
            continue
        try:
            count = int(raw)
        except ValueError:
            raise ValueError(
                f"{service.env_prefix}REPLICAS must be a whole number: {raw!r}"
            ) from None
        if not 1 <= count <= 16:
            raise ValueError(f"{service.env_prefix}REPLICAS must be between 1 and 16: {count}")
        counts[service.name] = count
    return counts


def orders_databases(count: int) -> list[str]:
    """The names of orders' databases when its users are split over ``count``:
    ``orders``, ``orders_2``..."""
    return ["orders", *(f"orders_{n}" for n in range(2, count + 1))]


def orders_databases_from(env: Mapping[str, str]) -> int:
    """``ORDERS_DATABASES``: how many databases orders' users are split over (default 1)."""
    raw = env.get("ORDERS_DATABASES", "").strip() or "1"
    try:
        count = int(raw)
    except ValueError:
        raise ValueError(f"ORDERS_DATABASES must be a whole number: {raw!r}") from None
    if not 1 <= count <= 16:
        raise ValueError(f"ORDERS_DATABASES must be between 1 and 16: {count}")
    return count


def only_shared(env: Mapping[str, str], *, keep: str = "") -> dict[str, str]:
    """``env`` without the variables of any service but the one whose prefix is ``keep``."""
    others = tuple(s.env_prefix for s in SERVICES if s.env_prefix != keep)
    return {name: value for name, value in env.items() if not name.startswith(others)}
