"""The GC freezer: live objects leave the collector's walks, and a thaw frees the cycles
that were frozen (workers/gc_freeze.py)."""

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from ws_gateway_service.workers.gc_freeze import run_gc_freezer


class Node:
    """A stand-in for a socket's objects: it refers to itself, so only the cyclic
    collector can free it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # leave the test process as it was


async def _until(condition: object, deadline_s: float = 5.0) -> None:
    async with asyncio.timeout(deadline_s):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_a_frozen_cycle_outlives_collections_until_the_thaw() -> None:
    stop = asyncio.Event()
    node = Node()
    alive = weakref.ref(node)
    freezer = asyncio.create_task(run_gc_freezer(freeze_every_s=0.05, thaw_every_s=0.6, stop=stop))
    try:
        await _until(lambda: gc.get_freeze_count() > 0)
        del node
        gc.collect()  # frozen: the collector does not walk it, so it stays
        assert alive() is not None
        await _until(lambda: alive() is None)  # the thaw collected it
    finally:
        stop.set()
        await freezer


async def test_without_thaws_the_freezer_only_freezes_and_stops_at_once() -> None:
    stop = asyncio.Event()
    node = Node()
    alive = weakref.ref(node)
    freezer = asyncio.create_task(run_gc_freezer(freeze_every_s=0.05, thaw_every_s=0, stop=stop))
    await _until(lambda: gc.get_freeze_count() > 0)
    del node
    await asyncio.sleep(0.3)
    gc.collect()
    assert alive() is not None
    stop.set()
    async with asyncio.timeout(1):
        await freezer
    gc.unfreeze()
    gc.collect()
    assert alive() is None
