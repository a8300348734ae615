"""Orders over one database or several: each shard and how a request finds its own.

A shard is one orders database with what works on it: its engine and sessionmaker,
its saga runner (which also scans it for sagas to recover) and its outbox relay. A
user's orders, their saga steps, fraud decisions and outbox events all live in the
user's shard (:mod:`orders_service.domain.sharding` says why the user is the key), so
a checkout, a saga and an erasure each work on one database, in one transaction, as
they do unsplit. Only staff reads cross shards: a list fans out and merges, an order
by id is looked for in each.

With one database (the default) there is one shard, and nothing here costs a query.
"""

import asyncio
import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from orders_service import repository
from orders_service.domain.sharding import ShardRouter
from orders_service.models import CustomerOrder
from orders_service.service.saga.runner import SagaRunner
from storefront_kit.events import OutboxRelay

__all__ = ["OrdersShard", "OrdersShards"]


@dataclass(frozen=True, kw_only=True, eq=False)
class OrdersShard:
    """One orders database and the workers that run on it."""

    url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    saga_runner: SagaRunner
    outbox_relay: OutboxRelay

    @property
    def name(self) -> str:
        """The database's host and name, without credentials (logs, metrics)."""
        url = make_url(self.url)
        return f"{url.host}:{url.port or 5432}/{url.database}"


class OrdersShards:
    """Every shard, and the router that says whose orders each holds."""

    def __init__(self, shards: Sequence[OrdersShard], *, router: ShardRouter) -> None:
        if not shards:
            raise ValueError("orders needs at least one database")
        self._shards = tuple(shards)
        self._urls = tuple(shard.url for shard in shards)
        self._by_url = {shard.url: shard for shard in shards}
        self._router = router

    @property
    def all(self) -> tuple[OrdersShard, ...]:
        """Every shard, in the order of ``ORDERS_DATABASE_SHARDS``."""
        return self._shards

    def for_user(self, user_id: str) -> OrdersShard:
        """The shard holding ``user_id``'s orders (where theirs are written and read)."""
        if len(self._shards) == 1:
            return self._shards[0]
        url = self._router(user_id, self._urls)
        shard = self._by_url.get(url)
        if shard is None:  # a broken router is a deployment error, not the caller's
            raise LookupError("the shard router returned a URL outside ORDERS_DATABASE_SHARDS")
        return shard

    async def holding(self, order_id: UUID) -> OrdersShard | None:
        """The shard that holds ``order_id``; None when none does (a staff read by id).

        Asked of every shard at once; with one shard, no query at all (the caller's
        own read then finds the order or not).
        """
        if len(self._shards) == 1:
            return self._shards[0]

        async def holds(shard: OrdersShard) -> bool:
            async with shard.sessionmaker() as session:
                return await repository.holds_order(session, order_id)

        found = await asyncio.gather(*(holds(shard) for shard in self._shards))
        return next((shard for shard, held in zip(self._shards, found, strict=True) if held), None)

    async def list_orders(
        self,
        *,
        user_id: str | None,
        statuses: Sequence[str] | None,
        page: int,
        size: int,
    ) -> tuple[list[CustomerOrder], int]:
        """One page of orders across shards, newest first, and how many match.

        A user's orders are on their shard alone. Without a user, every shard gives its
        first ``page * size`` and the pages merge, like one database's ``ORDER BY``
        would (created_at, then id, both descending): a deep page costs each shard that
        many rows, which staff paging (at most ``page_size_max`` a page) keeps small.
        """
        shards = self._shards if user_id is None else (self.for_user(user_id),)

        async def page_of(shard: OrdersShard) -> tuple[Sequence[CustomerOrder], int]:
            async with shard.sessionmaker() as session:
                if len(shards) == 1:
                    offset, limit = (page - 1) * size, size
                else:
                    offset, limit = 0, page * size
                items = await repository.list_orders(
                    session, user_id=user_id, statuses=statuses, offset=offset, limit=limit
                )
                total = await repository.count_orders(session, user_id=user_id, statuses=statuses)
                return items, total

        pages = await asyncio.gather(*(page_of(shard) for shard in shards))
        total = sum(count for _, count in pages)
        if len(shards) == 1:
            return list(pages[0][0]), total
        merged = heapq.merge(
            *(items for items, _ in pages),
            key=lambda order: (order.created_at, order.id),
            reverse=True,
        )
        return list(merged)[(page - 1) * size : page * size], total
