"""The shard router and the settings that name the databases (no database needed)."""

import uuid
from collections import Counter

import pytest
from pydantic import ValidationError

from orders_service.domain.sharding import VIRTUAL_SHARDS, by_user_hash, virtual_shard
from orders_service.settings import OrdersSettings

URLS = ("postgresql+asyncpg://db-a/orders", "postgresql+asyncpg://db-b/orders")


def test_the_default_router_is_stable_and_spreads_users_evenly() -> None:
    users = [str(uuid.uuid4()) for _ in range(4000)]
    routed = [by_user_hash(user, URLS) for user in users]
    assert set(routed) == set(URLS)
    assert [by_user_hash(user, URLS) for user in users] == routed  # same answer each time
    # The same in another process: a fixed id always lands on the same database.
    assert by_user_hash("user-1", URLS) == by_user_hash("user-1", list(URLS))
    shares = Counter(routed)
    assert all(1800 <= count <= 2200 for count in shares.values()), shares


def test_one_database_takes_every_user() -> None:
    assert {by_user_hash(str(uuid.uuid4()), URLS[:1]) for _ in range(50)} == {URLS[0]}
    with pytest.raises(ValueError, match="no database"):
        by_user_hash("user-1", ())


def test_the_shards_default_to_the_one_database_url() -> None:
    settings = OrdersSettings(database_url="postgresql://db-a/orders")
    assert settings.database_urls() == ("postgresql+asyncpg://db-a/orders",)
    split = OrdersSettings(database_shards=" postgres://db-a/orders, postgresql://db-b/orders ")
    assert split.database_urls() == URLS
    assert split.shard_router is by_user_hash


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"database_shards": f"{URLS[0]},{URLS[0]}"}, "twice"),
        ({"database_shards": "mysql://db-a/orders"}, "PostgreSQL"),
        ({"shard_router": "orders_service.domain.sharding.no_such_router"}, "shard_router"),
        ({"shard_router": "orders_service.domain.sharding.ShardRouter.__doc__"}, "shard_router"),
    ],
)
def test_settings_refuse_a_broken_shard_set_or_router(
    changes: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        OrdersSettings(**changes)


def test_users_hash_onto_virtual_shards_and_those_onto_databases() -> None:
    users = [str(uuid.uuid4()) for _ in range(2000)]
    shards = {virtual_shard(user) for user in users}
    assert shards == set(range(VIRTUAL_SHARDS))  # every virtual shard gets users
    for user in users[:200]:
        assert by_user_hash(user, URLS) == URLS[virtual_shard(user) % 2]
