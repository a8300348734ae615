"""The gateway: render ``gateway/nginx/nginx.conf.j2``, make a TLS certificate, run nginx.

One template serves every profile: ``local`` (the runner and tests: loopback ports,
files under the run's state directory, sandbox routes), ``compose`` (service names,
container paths, Docker's DNS re-resolved for ``--scale``) and ``kubernetes`` (the
compose container paths, ClusterIP Services resolved once). ``python -m storefront_stack
render-gateway`` writes every committed rendering (:data:`RENDERED`): the local-profile
compose ``nginx.conf`` (stand-ins under ``/sandbox/<name>/``), ``nginx.production.conf``
(no stand-ins) and the Kubernetes gateway's ``nginx.conf``. A test checks they are current.
The admin page has one home, :data:`KUBERNETES_ADMIN_DIR` (kustomize reads files only
below the kustomization, and not through a link that leaves it); ``gateway/nginx/admin``,
which compose and the local gateway serve, is a symbolic link to it.
"""

import datetime
import ipaddress
import os
import pwd
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import jinja2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from storefront_stack.topology import SANDBOXES, SERVICES
from storefront_stack.users import SERVICE_USER, chown_tree, ensure_service_user

__all__ = [
    "COMPOSE_CONFIG",
    "COMPOSE_PRODUCTION_CONFIG",
    "KUBERNETES_ADMIN_DIR",
    "KUBERNETES_CONFIG",
    "RENDERED",
    "TEMPLATE_DIR",
    "GatewayConfig",
    "NginxMissing",
    "check_config",
    "compose_config",
    "ensure_nginx",
    "kubernetes_config",
    "nginx_command",
    "prepare_local",
    "render_config",
    "render_gateway_files",
    "stale_gateway_files",
    "write_self_signed_cert",
]

TEMPLATE_DIR = Path(__file__).resolve().parents[4] / "gateway" / "nginx"
COMPOSE_CONFIG = TEMPLATE_DIR / "compose" / "nginx.conf"
COMPOSE_PRODUCTION_CONFIG = TEMPLATE_DIR / "compose" / "nginx.production.conf"
_REPO_ROOT = TEMPLATE_DIR.parents[1]
KUBERNETES_CONFIG = _REPO_ROOT / "deploy" / "kubernetes" / "base" / "gateway" / "nginx.conf"
KUBERNETES_ADMIN_DIR = KUBERNETES_CONFIG.parent / "admin"
Profile = Literal["local", "compose", "kubernetes"]

# The API answers JSON only; Swagger UI needs its CDN; the admin page talks to /ws.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: "
    "https://fastapi.tiangolo.com; connect-src 'self'; frame-ancestors 'none'"
)
ADMIN_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class NginxMissing(RuntimeError):
    """nginx is not installed and could not be installed here."""


@dataclass
class GatewayConfig:
    """Everything the template needs; rates use nginx syntax (``10r/s``)."""

    upstreams: Mapping[str, Sequence[str]]
    sandbox_upstreams: Mapping[str, str] = field(default_factory=dict)
    #: Local profile: a loopback port per service with several replicas, balanced over
    #: them, for the other services to call (a Kubernetes Service's role).
    internal_listeners: Mapping[str, int] = field(default_factory=dict)
    http_port: int = 8080
    https_port: int | None = 8443
    cert_file: str = ""
    key_file: str = ""
    admin_root: str = str(TEMPLATE_DIR / "admin")
    temp_dir: str = ""
    access_log: str | None = None
    listen_host: str = "127.0.0.1"
    auth_rate: str = "5r/s"
    auth_burst: int = 10
    search_rate: str = "50r/s"
    search_burst: int = 100
    retry_after_s: int = 1
    client_max_body_size: str = "1m"
    worker_processes: str = "auto"
    worker_connections: int = 4096
    worker_user: str | None = None


def _upstream_name(service: str) -> str:
    return "svc_" + service.replace("-", "_")


def render_config(config: GatewayConfig, profile: Profile = "local") -> str:
    """The nginx.conf for ``config``; routes follow docs/design.md §4 for the six services."""
    unknown = set(config.upstreams) - {s.name for s in SERVICES}
    if unknown:
        raise ValueError(f"unknown services in upstreams: {sorted(unknown)}")
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 (renders nginx configuration, not HTML)
    )
    environment.filters["upstream"] = _upstream_name
    template = environment.get_template("nginx.conf.j2")
    return template.render(
        profile=profile,
        upstreams=[(s.name, list(config.upstreams[s.name])) for s in SERVICES],
        sandbox_upstreams=sorted(config.sandbox_upstreams.items()),
        internal_listeners=sorted(config.internal_listeners.items()),
        http_port=config.http_port,
        https_port=config.https_port,
        cert_file=config.cert_file,
        key_file=config.key_file,
        admin_root=config.admin_root.rstrip("/"),
        temp_dir=config.temp_dir,
        access_log=config.access_log,
        listen_host=f"{config.listen_host}:" if config.listen_host else "",
        auth_rate=config.auth_rate,
        auth_burst=config.auth_burst,
        search_rate=config.search_rate,
        search_burst=config.search_burst,
        retry_after_s=config.retry_after_s,
        client_max_body_size=config.client_max_body_size,
        worker_processes=config.worker_processes,
        worker_connections=config.worker_connections,
        worker_user=config.worker_user,
        api_csp=API_CSP,
        docs_csp=DOCS_CSP,
        admin_csp=ADMIN_CSP,
    )


def compose_config(*, standins: bool = True) -> str:
    """A compose rendering: with the stand-ins' routes (local profile) or without."""
    return render_config(_container_config(standins=standins), profile="compose")


def kubernetes_config() -> str:
    """The Kubernetes gateway's nginx.conf (deploy/kubernetes/base/gateway)."""
    config = _container_config(standins=False)
    # `auto` counts the node's CPUs, not the pod's limit (gateway.yaml: cpu 2).
    config.worker_processes = "2"
    return render_config(config, profile="kubernetes")


def _container_config(*, standins: bool) -> GatewayConfig:
    return GatewayConfig(
        upstreams={s.name: [f"{s.name}:8000"] for s in SERVICES},
        sandbox_upstreams=(
            {s.name: f"sandbox-{s.name}:8000" for s in SANDBOXES} if standins else {}
        ),
        http_port=8080,
        https_port=8443,
        cert_file="/etc/nginx/certs/tls.crt",
        key_file="/etc/nginx/certs/tls.key",
        admin_root="/usr/share/nginx/admin",
        access_log="/dev/stdout",
        listen_host="",
    )


#: Every committed rendering of the gateway: file → what it must hold.
RENDERED: Mapping[Path, Callable[[], str]] = {
    COMPOSE_CONFIG: lambda: compose_config(standins=True),
    COMPOSE_PRODUCTION_CONFIG: lambda: compose_config(standins=False),
    KUBERNETES_CONFIG: kubernetes_config,
}


def stale_gateway_files() -> list[Path]:
    """The committed renderings that differ from the template's."""
    return [
        path
        for path, render in RENDERED.items()
        if not path.is_file() or path.read_text() != render()
    ]


def render_gateway_files() -> list[Path]:
    """Write every rendering; what was written."""
    for path, render in RENDERED.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render())
    return list(RENDERED)


def write_self_signed_cert(directory: Path, *, days: int = 30) -> tuple[Path, Path]:
    """A fresh self-signed certificate for localhost (made at run time, never committed)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert_file, key_file


def ensure_nginx() -> str:
    """The nginx binary; installed from Debian's package when missing and we are root."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or apt is None:
        raise NginxMissing("nginx is not installed: install Debian's `nginx` package")
    policy = Path("/usr/sbin/policy-rc.d")
    created_policy = not policy.exists()
    if created_policy:
        # Keep the package from starting a system nginx on port 80.
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run([apt, "update", "-qq"], check=True, env=env)
        subprocess.run(
            [apt, "install", "-y", "-qq", "--no-install-recommends", "nginx"], check=True, env=env
        )
    finally:
        if created_policy:
            policy.unlink(missing_ok=True)
    return ensure_nginx()


def prepare_local(temp_dir: Path) -> str | None:
    """Writable temp dirs for the workers; the worker user when we run as root."""
    temp_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return None
    ensure_service_user()
    chown_tree(temp_dir)
    return pwd.getpwnam(SERVICE_USER).pw_name


def nginx_command(binary: str, conf_file: Path, prefix: Path) -> list[str]:
    """The foreground nginx command (``daemon off`` is in the local rendering)."""
    return [binary, "-p", f"{prefix}/", "-e", "stderr", "-c", str(conf_file)]


def check_config(binary: str, conf_file: Path, prefix: Path) -> None:
    """``nginx -t``: fail with nginx's own message before anything is started."""
    result = subprocess.run(
        [*nginx_command(binary, conf_file, prefix), "-t", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"nginx rejected {conf_file}:\n{result.stderr.strip()}")
