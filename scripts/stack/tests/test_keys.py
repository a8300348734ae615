"""Service-token keys for a run: one per service, each process gets only its own."""

import json
from pathlib import Path

from jwt_core_lib import SigningKey
from storefront_stack.cli import main
from storefront_stack.keys import service_token_env
from storefront_stack.topology import SERVICES, Endpoints, service_env

NAMES = [s.name for s in SERVICES]


def test_every_service_gets_its_own_fresh_key_and_its_callers_public_keys() -> None:
    env = service_token_env(NAMES)
    assert set(env) == {
        f"{s.env_prefix}SERVICE_TOKEN_{what}" for s in SERVICES for what in ("KEY", "CALLERS")
    }
    keys = {s.name: SigningKey.from_pem(env[f"{s.env_prefix}SERVICE_TOKEN_KEY"]) for s in SERVICES}
    assert len({key.kid for key in keys.values()}) == len(SERVICES)
    callers = {s.name: json.loads(env[f"{s.env_prefix}SERVICE_TOKEN_CALLERS"]) for s in SERVICES}
    assert callers == {
        "auth": {"notifications": [keys["notifications"].x]},
        "catalog": {},
        "inventory": {"catalog": [keys["catalog"].x], "orders": [keys["orders"].x]},
        "orders": {"auth": [keys["auth"].x]},
        "notifications": {"auth": [keys["auth"].x]},
        "ws-gateway": {"auth": [keys["auth"].x]},
    }
    again = service_token_env(NAMES)
    assert again["ORDERS_SERVICE_TOKEN_KEY"] != env["ORDERS_SERVICE_TOKEN_KEY"]


def test_a_subset_of_services_lists_only_callers_within_it() -> None:
    env = service_token_env(["inventory", "orders"])
    assert set(env) == {
        "INVENTORY_SERVICE_TOKEN_KEY",
        "INVENTORY_SERVICE_TOKEN_CALLERS",
        "ORDERS_SERVICE_TOKEN_KEY",
        "ORDERS_SERVICE_TOKEN_CALLERS",
    }
    assert set(json.loads(env["INVENTORY_SERVICE_TOKEN_CALLERS"])) == {"orders"}


def test_a_service_process_sees_no_other_services_secrets() -> None:
    platform_env = {
        "STOREFRONT_ENVIRONMENT": "development",
        "AUTH_JWT_SIGNING_KEY": "auth-only",
        **service_token_env(NAMES),
    }
    endpoints = Endpoints(
        postgres_url="postgresql://storefront@127.0.0.1:5432",
        redis_url="redis://127.0.0.1:6379/0",
        elasticsearch_url="http://127.0.0.1:9200",
        service_ports={s.name: 9000 + i for i, s in enumerate(SERVICES)},
    )
    for service in SERVICES:
        env = service_env(service, endpoints, platform_env=platform_env)
        secrets = {name for name in env if "KEY" in name or "CALLERS" in name}
        assert secrets == {
            f"{service.env_prefix}SERVICE_TOKEN_KEY",
            f"{service.env_prefix}SERVICE_TOKEN_CALLERS",
        } | ({"AUTH_JWT_SIGNING_KEY"} if service.name == "auth" else set())
        assert env["STOREFRONT_ENVIRONMENT"] == "development"


def test_service_keys_command_writes_one_private_key_and_callers_map_per_service(
    tmp_path: Path,
) -> None:
    assert main(["service-keys", "--out", str(tmp_path / "keys")]) == 0
    files = sorted(p.name for p in (tmp_path / "keys").iterdir())
    assert files == sorted([f"{n}.pem" for n in NAMES] + [f"{n}-callers.json" for n in NAMES])
    inventory = json.loads((tmp_path / "keys" / "inventory-callers.json").read_text())
    orders = SigningKey.from_pem((tmp_path / "keys" / "orders.pem").read_text())
    assert inventory["orders"] == [orders.x]
    assert (tmp_path / "keys" / "orders.pem").stat().st_mode & 0o077 == 0
