"""Which database holds a user's orders, when orders are split over several (shards).

Every row of orders' database belongs to one user: the order carries ``user_id``, and
its saga steps, fraud decision and outbox events hang off the order. So a user is the
shard key, and a *router* (``ORDERS_SHARD_ROUTER``) names the database of each user:
a function ``(user_id, database_urls) -> url`` returning one of the URLs it is given
(``ORDERS_DATABASE_SHARDS``). A router must be a pure function of its arguments,
identical in every replica: two replicas routing one user differently would split the
user's orders. docs/orders.md ("Shards") says how to write one and how an existing
database is split.
"""

import hashlib
from collections.abc import Callable, Sequence

__all__ = ["VIRTUAL_SHARDS", "ShardRouter", "by_user_hash", "virtual_shard"]

#: Users hash onto this many virtual shards, and virtual shards onto databases: a later
#: split moves whole virtual shards (docs/capacity.md), never re-hashes every user.
VIRTUAL_SHARDS = 64

#: ``(user_id, database_urls) -> one of database_urls``.
ShardRouter = Callable[[str, Sequence[str]], str]


def virtual_shard(user_id: str) -> int:
    """The user's virtual shard, 0 to ``VIRTUAL_SHARDS - 1``: a stable hash of the id.

    BLAKE2b, not Python's ``hash()``, which is salted per process: every replica, and
    every restart, must route a user to the same database.
    """
    digest = hashlib.blake2b(user_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % VIRTUAL_SHARDS


def by_user_hash(user_id: str, database_urls: Sequence[str]) -> str:
    """The default router: virtual shard ``v`` lives in database ``v mod len(urls)``.

    A router of one's own (a table from virtual shard to URL) moves shards one by one.
    """
    if not database_urls:
        raise ValueError("no database to route to")
    return database_urls[virtual_shard(user_id) % len(database_urls)]
