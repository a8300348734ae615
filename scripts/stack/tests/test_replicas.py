"""``<SERVICE>_REPLICAS``: how many processes of each service the local runner starts."""

from pathlib import Path

import pytest

from storefront_stack.platform import Platform, PlatformOptions
from storefront_stack.topology import Endpoints, replicas_from


def test_replica_counts_are_read_per_service_prefix() -> None:
    counts = replicas_from({"ORDERS_REPLICAS": "3", "WS_GATEWAY_REPLICAS": " 2 ", "AUTH_X": "9"})
    assert counts == {"orders": 3, "ws-gateway": 2}
    assert replicas_from({"CATALOG_INDEX_REPLICAS": "2"}) == {}  # Elasticsearch's, not ours


@pytest.mark.parametrize("raw", ["0", "-1", "17", "two", "1.5"])
def test_a_count_out_of_range_or_not_a_number_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="ORDERS_REPLICAS"):
        replicas_from({"ORDERS_REPLICAS": raw})


def test_each_replica_gets_its_own_port_and_name(tmp_path: Path) -> None:
    platform = Platform(PlatformOptions(state_dir=tmp_path, replicas={"orders": 2}))
    platform.endpoints = Endpoints(
        postgres_url="postgresql://u@127.0.0.1:1",
        redis_url="redis://127.0.0.1:2/0",
        elasticsearch_url="http://127.0.0.1:3",
        service_ports={"orders": 8104, "inventory": 8103, "auth": 8101},
        replica_ports={"orders": [9001, 9002], "inventory": [8103]},
    )
    assert platform.replica_names("orders") == ["orders-1", "orders-2"]
    assert platform.replica_names("inventory") == ["inventory"]
    ports = [platform.service_env(name)["ORDERS_PORT"] for name in ("orders-1", "orders-2")]
    assert ports == ["9001", "9002"]
    assert platform.service_env("inventory")["INVENTORY_PORT"] == "8103"
    # Others reach orders at its balanced address, not at one replica.
    assert platform.service_env("inventory")["INVENTORY_ORDERS_URL"] == "http://127.0.0.1:8104"
