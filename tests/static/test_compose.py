"""docker-compose.yml, checked without a Docker engine (none runs on these machines).

Two layers: the file must validate against the Compose Specification JSON schema (the
copy vendored by ``check-jsonschema``, so no network is needed), and it must keep the
platform's own rules: the six services built from ``services/Dockerfile`` and wired
like the local runner (``storefront_stack.topology``), a healthcheck on everything that
stays up, conditions on every dependency, migrations before the services that own a
database, no secret written into the file, each container given only its own secrets
(no ``env_file``), and nginx in front on 8080 and 8443. ``tests/compose`` runs the file
on a real engine.
"""

import copy
import importlib.resources
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from storefront_stack.topology import SANDBOXES, SERVICES, Service

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = "services/Dockerfile"
SERVICE_PORT = 8000
GATEWAY = "nginx"
CERTS_JOB = "gateway-certs"
INFRASTRUCTURE = ("postgres", "redis", "elasticsearch")
DEPENDENCY_CONDITIONS = frozenset(
    {"service_started", "service_healthy", "service_completed_successfully"}
)
# Names whose values are secrets: they may only come from the environment (.env).
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|(^|_)KEYS?|_TOKEN)$")
REQUIRED_VARIABLE = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*:\?[^}]+\}$")
URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/@]+:(?P<password>[^@]*)@")

Compose = dict[str, Any]


# --- loading -------------------------------------------------------------------------


@cache
def _compose_text() -> str:
    return COMPOSE_FILE.read_text()


def load_compose() -> Compose:
    """The compose file as compose sees it before interpolation (anchors merged)."""
    document = yaml.safe_load(_compose_text())
    assert isinstance(document, dict), "docker-compose.yml must be a mapping"
    return copy.deepcopy(document)


@cache
def compose_schema() -> dict[str, Any]:
    """The Compose Specification schema vendored by check-jsonschema (offline)."""
    resource = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(resource.joinpath("compose-spec.json").read_text())
    assert isinstance(schema, dict)
    return schema


def schema_errors(document: object) -> list[str]:
    """Every schema violation of ``document``, as ``path: message`` lines."""
    validator_class = jsonschema.validators.validator_for(compose_schema())
    validator_class.check_schema(compose_schema())
    validator = validator_class(compose_schema(), format_checker=validator_class.FORMAT_CHECKER)
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]


def services() -> dict[str, dict[str, Any]]:
    found = load_compose()["services"]
    assert isinstance(found, dict)
    return found


def environment(definition: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment``, in either of its two spellings, as strings."""
    raw = definition.get("environment") or {}
    if isinstance(raw, list):
        return {key: value for key, _, value in (item.partition("=") for item in raw)}
    return {key: "" if value is None else str(value) for key, value in raw.items()}


def depends_on(definition: Mapping[str, Any]) -> dict[str, Any]:
    raw = definition.get("depends_on") or {}
    if isinstance(raw, list):  # the short form: no condition at all
        return {name: {} for name in raw}
    assert isinstance(raw, dict)
    return raw


def one_shot_jobs(all_services: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Containers others wait on to *finish*: migrations and the certificate maker."""
    return {
        name
        for definition in all_services.values()
        for name, rule in depends_on(definition).items()
        if isinstance(rule, dict) and rule.get("condition") == "service_completed_successfully"
    }


def published_ports(definition: Mapping[str, Any]) -> set[int]:
    ports: set[int] = set()
    for entry in definition.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["published"]))
        else:  # "[ip:]published:target[/proto]"
            parts = str(entry).split("/")[0].split(":")
            ports.add(int(parts[-2] if len(parts) > 1 else parts[-1]))
    return ports


def mounts(definition: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of each volume entry."""
    found = []
    for entry in definition.get("volumes") or []:
        if isinstance(entry, dict):
            found.append((entry["source"], entry["target"], bool(entry.get("read_only"))))
        else:
            source, target, *options = str(entry).split(":")
            found.append((source, target, "ro" in ",".join(options).split(",")))
    return found


def walk_strings(node: object, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk_strings(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk_strings(value, f"{path}/{index}")
    elif isinstance(node, str):
        yield path, node


def _service(name: str) -> Service:
    return next(service for service in SERVICES if service.name == name)


# --- the Compose Specification -------------------------------------------------------


def test_compose_file_validates_against_the_compose_specification() -> None:
    errors = schema_errors(load_compose())
    assert not errors, "docker-compose.yml breaks the Compose Specification:\n" + "\n".join(errors)


def test_check_jsonschema_cli_accepts_the_compose_file() -> None:
    """The same check a developer runs by hand (or pre-commit) agrees with the test."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE_FILE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("unknown-key", "services/auth"),
        ("healthcheck-typo", "services/postgres/healthcheck"),
        ("build-not-a-mapping", "services/catalog/build"),
        ("depends-on-bad-condition", "services/orders/depends_on"),
        ("top-level-typo", "<root>"),
    ],
)
def test_schema_validation_rejects_a_broken_copy(breakage: str, expected: str) -> None:
    broken = load_compose()
    definitions = broken["services"]
    if breakage == "unknown-key":
        definitions["auth"]["healthchek"] = {"test": ["CMD", "true"]}
    elif breakage == "healthcheck-typo":
        definitions["postgres"]["healthcheck"]["intervall"] = "5s"
    elif breakage == "build-not-a-mapping":
        definitions["catalog"]["build"] = ["services/Dockerfile"]
    elif breakage == "depends-on-bad-condition":
        definitions["orders"]["depends_on"]["redis"] = {"condition": 1}
    elif breakage == "top-level-typo":
        broken["servics"] = broken.pop("services")
    errors = schema_errors(broken)
    assert any(error.startswith(expected) for error in errors), errors


def test_the_rules_below_catch_a_broken_copy() -> None:
    """The platform checks are not vacuous: each one fails on a file that breaks it."""
    broken = load_compose()
    definitions = broken["services"]
    del definitions["redis"]["healthcheck"]
    definitions["orders"]["depends_on"]["redis"] = {}
    definitions["auth"]["environment"]["AUTH_JWT_SIGNING_KEY"] = "hunter2"
    del definitions["inventory"]["depends_on"]["migrate-inventory"]
    definitions[GATEWAY]["ports"] = ["8080:8080"]
    violations = set(_rule_violations(broken))
    assert {
        "healthcheck:redis",
        "condition:orders->redis",
        "secret:auth/AUTH_JWT_SIGNING_KEY",
        "migration:inventory",
        "gateway-port:8443",
    } <= violations, violations
    assert not _rule_violations(load_compose())


def _rule_violations(document: Compose) -> list[str]:
    """A compact re-statement of the platform rules, to prove they can fail."""
    definitions: dict[str, dict[str, Any]] = document["services"]
    jobs = one_shot_jobs(definitions)
    problems = [
        f"healthcheck:{name}"
        for name, definition in definitions.items()
        if name not in jobs and not (definition.get("healthcheck") or {}).get("test")
    ]
    for name, definition in definitions.items():
        problems += [
            f"condition:{name}->{other}"
            for other, rule in depends_on(definition).items()
            if rule.get("condition") not in DEPENDENCY_CONDITIONS
        ]
        problems += [
            f"secret:{name}/{key}"
            for key, value in environment(definition).items()
            if SECRET_NAME.search(key) and not REQUIRED_VARIABLE.match(value)
        ]
    for service in SERVICES:
        rule = depends_on(definitions[service.name]).get(f"migrate-{service.name}", {})
        if service.database and rule.get("condition") != "service_completed_successfully":
            problems.append(f"migration:{service.name}")
    ports = published_ports(definitions[GATEWAY])
    problems += [f"gateway-port:{port}" for port in (8080, 8443) if port not in ports]
    return problems


# --- the platform's rules --------------------------------------------------------------


def test_compose_file_has_no_obsolete_version_key() -> None:
    assert "version" not in load_compose()


def test_the_six_services_are_built_from_the_one_dockerfile() -> None:
    definitions = services()
    for service in SERVICES:
        assert service.name in definitions, f"service {service.name} missing"
        build = definitions[service.name].get("build")
        assert isinstance(build, dict), f"{service.name}: build must be a mapping"
        assert build.get("context") == "."
        assert build.get("dockerfile") == DOCKERFILE
        assert build.get("args") == {
            "SERVICE": service.name,
            "PACKAGE": service.package,
            "ENV_PREFIX": service.env_prefix,
        }, f"{service.name}: build args"
        assert build.get("target") in (None, "service")
        assert (REPO_ROOT / "services" / service.name / "src" / service.package).is_dir()


def test_every_container_that_stays_up_has_a_healthcheck() -> None:
    definitions = services()
    jobs = one_shot_jobs(definitions)
    for name, definition in definitions.items():
        if name in jobs:
            assert definition.get("restart", "no") == "no", f"{name} is a one-shot job"
            continue
        healthcheck = definition.get("healthcheck") or {}
        assert healthcheck.get("test"), f"{name} has no healthcheck"
        assert not healthcheck.get("disable"), f"{name} disables its healthcheck"
    for name in (*INFRASTRUCTURE, GATEWAY, *(s.name for s in SERVICES)):
        assert name in definitions
        assert name not in jobs


def test_services_report_readiness_and_sandboxes_liveness() -> None:
    definitions = services()
    for service in SERVICES:
        test = " ".join(definitions[service.name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{SERVICE_PORT}/health/ready" in test, service.name
        assert "urllib" in test, "the slim image has no curl: check with Python"
        command = definitions[service.name]["healthcheck"]["test"]
        compile(command[command.index("-c") + 1], f"{service.name} healthcheck", "exec")
    for sandbox in SANDBOXES:
        test = " ".join(definitions[f"sandbox-{sandbox.name}"]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{SERVICE_PORT}/health/live" in test


def test_every_dependency_waits_on_a_condition() -> None:
    definitions = services()
    jobs = one_shot_jobs(definitions)
    for name, definition in definitions.items():
        raw = definition.get("depends_on")
        if raw is None:
            continue
        assert isinstance(raw, dict), f"{name}: depends_on must name a condition for each"
        for other, rule in raw.items():
            assert other in definitions, f"{name} depends on unknown {other}"
            assert isinstance(rule, dict), f"{name} -> {other}"
            condition = rule.get("condition")
            assert condition in DEPENDENCY_CONDITIONS - {"service_started"}, (
                f"{name} -> {other}: condition {condition!r}"
            )
            if condition == "service_healthy":
                assert definitions[other].get("healthcheck", {}).get("test"), (
                    f"{name} waits for {other} to be healthy, but it has no healthcheck"
                )
            else:
                assert other in jobs


def test_services_wait_for_the_infrastructure_they_use() -> None:
    definitions = services()
    for service in SERVICES:
        needs = {"redis"}
        if service.database:
            needs.add("postgres")
        if service.elasticsearch:
            needs.add("elasticsearch")
        waits = {
            other
            for other, rule in depends_on(definitions[service.name]).items()
            if rule.get("condition") == "service_healthy"
        }
        assert needs <= waits, f"{service.name} must wait for {sorted(needs - waits)}"


def test_migrations_run_before_each_database_owning_service(
    usage_of: Callable[[Service], str],
) -> None:
    definitions = services()
    for service in SERVICES:
        job_name = f"migrate-{service.name}"
        if not service.database:
            assert job_name not in definitions
            continue
        job = definitions[job_name]
        assert job["command"] == ["migrate"]
        assert job.get("restart") == "no"
        assert job["build"] == definitions[service.name]["build"], "same image as the service"
        assert job["image"] == definitions[service.name]["image"]
        # The service's settings, but no service-token key: a migration calls nobody.
        assert environment(job) == {
            key: value
            for key, value in environment(definitions[service.name]).items()
            if "SERVICE_TOKEN" not in key
        }
        assert depends_on(job)["postgres"] == {"condition": "service_healthy"}
        assert depends_on(definitions[service.name])[job_name] == {
            "condition": "service_completed_successfully"
        }
        # The job's command must exist in the image's entry point.
        assert "migrate" in usage_of(service), f"python -m {service.package} migrate must exist"


def test_service_wiring_mirrors_the_local_runner() -> None:
    """Same variables as ``topology.service_env``, pointing at container names."""
    from storefront_stack.topology import Endpoints, service_env

    endpoints = Endpoints(
        postgres_url="postgresql://storefront@postgres:5432",
        redis_url="redis://redis:6379/0",
        elasticsearch_url="http://elasticsearch:9200",
        service_ports={s.name: SERVICE_PORT for s in SERVICES},
        sandbox_ports={s.name: SERVICE_PORT for s in SANDBOXES},
    )
    definitions = services()
    for service in SERVICES:
        env = environment(definitions[service.name])
        expected_names = set(service_env(service, endpoints, platform_env={}))
        missing = expected_names - set(env)
        assert not missing, f"{service.name} lacks {sorted(missing)}"
        prefix = service.env_prefix
        assert env[f"{prefix}HOST"] == "0.0.0.0"
        assert env[f"{prefix}PORT"] == str(SERVICE_PORT)
        assert env[f"{prefix}REDIS_URL"] == "redis://redis:6379/0"
        if service.database:
            assert re.fullmatch(
                r"postgresql\+asyncpg://storefront:\$\{POSTGRES_PASSWORD:\?[^}]+\}"
                rf"@postgres:5432/{service.database}",
                env[f"{prefix}DATABASE_URL"],
            ), env[f"{prefix}DATABASE_URL"]
        if service.elasticsearch:
            assert env[f"{prefix}ELASTICSEARCH_URL"] == "http://elasticsearch:9200"
        for other in SERVICES:
            if other is not service:
                url = env[f"{prefix}{other.env_prefix}URL"]
                assert url == f"http://{other.name}:{SERVICE_PORT}"
                assert other.name in definitions
        for sandbox in SANDBOXES:
            if not sandbox.api:
                continue
            url = env[f"{prefix}{sandbox.name.upper()}_API_URL"]
            assert url == f"http://sandbox-{sandbox.name}:{SERVICE_PORT}"
        # Error reports: the Sentry stand-in unless .env names a DSN.
        assert env["STOREFRONT_SENTRY_DSN"] == (
            "${STOREFRONT_SENTRY_DSN:-http://storefront@sandbox-sentry:8000/1}"
        )
        # Traces: the OTLP stand-in unless .env names a collector.
        assert env["STOREFRONT_OTLP_ENDPOINT"] == (
            "${STOREFRONT_OTLP_ENDPOINT:-http://sandbox-otlp:8000}"
        )
        assert env["STOREFRONT_JWKS_URL"] == "http://auth:8000/.well-known/jwks.json"


def test_no_container_gets_the_whole_env_file() -> None:
    """.env feeds interpolation only; a container sees what its `environment:` names."""
    for name, definition in services().items():
        assert "env_file" not in definition, f"{name} must not read .env as a whole"


# Secrets a container may hold besides its own prefix's: the service-token key every
# service signs with (until each has its own), and the seed's, which acts as auth's
# admin tool (auth's database and signing key).
SHARED_SECRETS: frozenset[str] = frozenset()  # no secret is handed to two services
FOREIGN_SECRETS_ALLOWED = {"seed": ("AUTH_",), "postgres": ("POSTGRES_",)}


def _secret_variables(definition: Mapping[str, Any]) -> set[str]:
    """Variables of a container that carry a secret: by name, or a URL with a password."""
    return {
        key
        for key, value in environment(definition).items()
        if SECRET_NAME.search(key) or URL_PASSWORD.match(value)
    }


def test_each_container_gets_only_its_own_secrets() -> None:
    definitions = services()
    owners = {s.name: s.env_prefix for s in SERVICES}
    owners.update({f"migrate-{s.name}": s.env_prefix for s in SERVICES if s.database})
    for name, definition in definitions.items():
        allowed = FOREIGN_SECRETS_ALLOWED.get(name, ())
        if name in owners:
            allowed = (*allowed, owners[name])
        foreign = {
            key
            for key in _secret_variables(definition) - SHARED_SECRETS
            if not key.startswith(allowed)
        }
        assert not foreign, f"{name} gets secrets that are not its own: {sorted(foreign)}"
        if name not in owners:
            assert not _secret_variables(definition) & SHARED_SECRETS, name
    # Not vacuous: auth's signing key and a database URL are seen as secrets.
    assert "AUTH_JWT_SIGNING_KEY" in _secret_variables(definitions["auth"])
    assert "ORDERS_DATABASE_URL" in _secret_variables(definitions["orders"])
    assert _secret_variables(definitions["catalog"]) == {"CATALOG_SERVICE_TOKEN_KEY"}
    # Each service signs with its own key; its migrate job holds none.
    for service in SERVICES:
        assert f"{service.env_prefix}SERVICE_TOKEN_KEY" in _secret_variables(
            definitions[service.name]
        )
        if service.database:
            assert not any(
                "SERVICE_TOKEN" in key
                for key in _secret_variables(definitions[f"migrate-{service.name}"])
            )
    for sandbox in SANDBOXES:
        assert not _secret_variables(definitions[f"sandbox-{sandbox.name}"])


def test_services_drain_within_their_stop_grace_period() -> None:
    """Scaling in: SIGTERM, uvicorn finishes its requests, and only then compose kills."""
    from storefront_kit.cli import GRACEFUL_SHUTDOWN_S

    for service in SERVICES:
        grace = services()[service.name].get("stop_grace_period", "10s")
        assert re.fullmatch(r"\d+s", grace), grace
        assert int(grace[:-1]) > GRACEFUL_SHUTDOWN_S, service.name


def test_the_local_profile_seeds_before_the_gateway_opens() -> None:
    definitions = services()
    seed = definitions["seed"]
    assert seed["build"]["target"] == "seed"
    assert seed.get("restart") == "no"
    env = environment(seed)
    assert env["SEED_API_URL"] == "http://inventory:8000"
    assert re.fullmatch(r"\$\{SEED_PRODUCTS:-(\d+)\}", env["SEED_PRODUCTS"])
    assert int(env["SEED_PRODUCTS"].split(":-")[1].rstrip("}")) >= 1000
    for needed in ("auth", "inventory", "catalog"):
        assert depends_on(seed)[needed] == {"condition": "service_healthy"}
    assert depends_on(definitions[GATEWAY])["seed"] == {
        "condition": "service_completed_successfully"
    }


class _ComposeLoader(yaml.SafeLoader):
    """YAML with compose's merge tags (``!override``, ``!reset``) read as plain values."""


for _tag in ("!override", "!reset"):
    _ComposeLoader.add_constructor(
        _tag,
        lambda loader, node: (
            loader.construct_mapping(node, deep=True)
            if isinstance(node, yaml.MappingNode)
            else loader.construct_sequence(node, deep=True)
            if isinstance(node, yaml.SequenceNode)
            else None
        ),
    )


def test_the_production_file_drops_the_local_profile() -> None:
    text = (REPO_ROOT / "docker-compose.production.yml").read_text()
    production = yaml.load(text, Loader=_ComposeLoader)  # noqa: S506 (a SafeLoader subclass)
    assert not schema_errors(production)
    definitions = production["services"]
    local_only = {"seed", *(f"sandbox-{s.name}" for s in SANDBOXES)}
    for name in local_only:
        assert definitions[name]["profiles"] == ["local-standins"], name
    for name, definition in definitions.items():
        if name in local_only:
            continue
        assert not set(depends_on(definition)) & local_only, name
        if name in services() and "depends_on" in definition:
            # `!override` replaces the base file's list: every other dependency is kept.
            base = set(depends_on(services()[name])) - local_only
            assert set(depends_on(definition)) == base, name
    for service in SERVICES:
        env = environment(definitions[service.name])
        assert env["STOREFRONT_ENVIRONMENT"] == "production", service.name
        assert env["STOREFRONT_DOCS_ENABLED"] == "false", service.name
    mounted = {target: source for source, target, _ in mounts(definitions[GATEWAY])}
    assert mounted["/etc/nginx/nginx.conf"] == "./gateway/nginx/compose/nginx.production.conf"
    assert (
        "/sandbox/" not in (REPO_ROOT / "gateway/nginx/compose/nginx.production.conf").read_text()
    )


def test_sandboxes_run_from_the_sandbox_target() -> None:
    definitions = services()
    for sandbox in SANDBOXES:
        definition = definitions[f"sandbox-{sandbox.name}"]
        assert definition["build"]["dockerfile"] == DOCKERFILE
        assert definition["build"]["target"] == "sandbox"
        assert definition["command"] == [f"{sandbox.module}:create_app"]


def test_no_secret_is_written_into_the_compose_file() -> None:
    """Secrets come from ``${VAR:?...}`` (required, no default), never literal values."""
    definitions = services()
    for name, definition in definitions.items():
        for key, value in environment(definition).items():
            if SECRET_NAME.search(key):
                assert REQUIRED_VARIABLE.match(value), f"{name}: {key} must be ${{{key}:?...}}"
            credentials = URL_PASSWORD.match(value)
            if credentials:
                assert REQUIRED_VARIABLE.match(credentials["password"]), f"{name}: {key}"
        args = (definition.get("build") or {}).get("args") or {}
        assert not any(SECRET_NAME.search(key) for key in args), f"{name}: secret build arg"
    for path, text in walk_strings(load_compose()):
        for key in re.findall(r"\$\{([A-Z_][A-Z0-9_]*)[:-]-", text):
            assert not SECRET_NAME.search(key), f"{path}: secret {key} must not have a default"
    assert "secrets" not in load_compose() or all(
        "file" not in spec or not str(spec["file"]).startswith("/")
        for spec in load_compose()["secrets"].values()
    )


def test_only_the_gateway_publishes_ports() -> None:
    definitions = services()
    for name, definition in definitions.items():
        if name != GATEWAY:
            assert not definition.get("ports"), f"{name} must not publish ports"
            assert definition.get("network_mode") != "host"
    assert published_ports(definitions[GATEWAY]) == {8080, 8443}


def test_gateway_serves_the_compose_config_admin_page_and_certificates() -> None:
    definitions = services()
    gateway = definitions[GATEWAY]
    # The compose rendering uses `server ... resolve` (scale-out), which needs nginx 1.27.3+.
    match = re.fullmatch(r"nginx:(\d+)\.(\d+)\.(\d+)-alpine", gateway["image"])
    assert match, f"pin the gateway image to an exact version: {gateway['image']}"
    assert tuple(int(part) for part in match.groups()) >= (1, 27, 3)
    mounted = {target: (source, read_only) for source, target, read_only in mounts(gateway)}
    assert mounted["/etc/nginx/nginx.conf"] == ("./gateway/nginx/compose/nginx.conf", True)
    assert mounted["/usr/share/nginx/admin"] == ("./gateway/nginx/admin", True)
    certs_volume, _ = mounted["/etc/nginx/certs"]
    certs_job = definitions[CERTS_JOB]
    assert (certs_volume, "/certs", False) in mounts(certs_job)
    command = " ".join(certs_job["command"])
    assert "/certs/tls.crt" in command
    assert "/certs/tls.key" in command
    rules = depends_on(gateway)
    assert rules[CERTS_JOB] == {"condition": "service_completed_successfully"}
    for service in SERVICES:
        assert rules[service.name] == {"condition": "service_healthy"}, service.name


def test_state_lives_in_declared_named_volumes() -> None:
    document = load_compose()
    declared = set(document.get("volumes") or {})
    for name, definition in document["services"].items():
        for source, _, _ in mounts(definition):
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
            elif source.startswith("/"):
                pytest.fail(f"{name}: absolute host path {source} ties compose to one machine")
            else:
                assert (REPO_ROOT / source).exists(), f"{name}: {source} is not in the repo"
    data_dirs = {
        "postgres": "/var/lib/postgresql/data",
        "redis": "/data",
        "elasticsearch": "/usr/share/elasticsearch/data",
    }
    for name, target in data_dirs.items():
        sources = [s for s, t, _ in mounts(document["services"][name]) if t == target]
        assert sources, f"{name} must keep {target} on a volume"
        assert sources[0] in declared, f"{name} must keep {target} on a named volume"
    certs = [s for s, t, _ in mounts(document["services"][CERTS_JOB]) if t == "/certs"]
    assert certs, "the certificate job writes /certs"
    assert certs[0] in declared, "certificates live in a named volume"


def test_postgres_init_creates_every_service_database() -> None:
    definitions = services()
    init = next(s for s, t, _ in mounts(definitions["postgres"]) if "initdb" in t)
    scripts = "\n".join(p.read_text() for p in sorted((REPO_ROOT / init).glob("*.sql")))
    for service in SERVICES:
        if service.database:
            assert re.search(rf"CREATE DATABASE {service.database}\s*;", scripts), service.name
    assert "pg_isready" in " ".join(definitions["postgres"]["healthcheck"]["test"])


def test_the_gateway_config_matches_the_containers() -> None:
    """gateway/nginx/compose/nginx.conf proxies to compose's names, ports and mounts."""
    definitions = services()
    gateway = definitions[GATEWAY]
    mounted = {target: source for source, target, _ in mounts(gateway)}
    config = (REPO_ROOT / mounted["/etc/nginx/nginx.conf"]).read_text()
    upstreams = re.findall(r"^\s*server\s+([A-Za-z0-9_.-]+):(\d+)\b", config, re.M)
    assert upstreams, "no upstream servers in the compose nginx.conf"
    for host, port in upstreams:
        assert host in definitions, f"nginx proxies to {host}, which compose does not run"
        assert int(port) == SERVICE_PORT, f"{host}:{port}"
    assert {s.name for s in SERVICES} <= {host for host, _ in upstreams}
    listens = {int(port) for port in re.findall(r"^\s*listen\s+(?:\S+:)?(\d+)", config, re.M)}
    targets = set()
    for entry in gateway["ports"]:
        targets.add(int(entry["target"] if isinstance(entry, dict) else entry.split(":")[-1]))
    assert targets <= listens, f"nginx listens on {sorted(listens)}, compose maps {targets}"
    for path in re.findall(r"^\s*ssl_certificate(?:_key)?\s+(\S+);", config, re.M):
        assert path.startswith("/etc/nginx/certs/"), path
        assert path.rsplit("/", 1)[1] in " ".join(definitions[CERTS_JOB]["command"])
    for path in re.findall(r"^\s*(?:alias|root)\s+(\S+);", config, re.M):
        assert any(path.startswith(target) for target in mounted), f"{path} is not mounted"


def test_each_service_that_encrypts_personal_fields_gets_its_own_keys() -> None:
    """Its container, its migrate job (data migrations encrypt rows) and nothing else."""
    import importlib
    import inspect

    from storefront_kit.settings import FieldEncryptionSettingsMixin
    from storefront_stack.topology import FIELD_ENCRYPTION

    encrypting = set()
    for service in SERVICES:
        module = importlib.import_module(f"{service.package}.settings")
        if any(
            inspect.isclass(cls) and issubclass(cls, FieldEncryptionSettingsMixin)
            for cls in vars(module).values()
            if getattr(cls, "__module__", None) == module.__name__
        ):
            encrypting.add(service.name)
    assert encrypting == set(FIELD_ENCRYPTION)
    definitions = services()
    for name in FIELD_ENCRYPTION:
        prefix = next(s.env_prefix for s in SERVICES if s.name == name)
        for container in (name, f"migrate-{name}"):
            env = environment(definitions[container])
            for variable in ("ENCRYPTION_KEYS", "BLIND_INDEX_KEY"):
                assert env[f"{prefix}{variable}"].startswith(f"${{{prefix}{variable}:?"), container
            assert f"{prefix}ENCRYPTION_KEY_ID" in env
