"""Fire-and-forget tasks held and drained, and a lifespan's loops stopped in bounded time."""

import asyncio

from storefront_kit.tasks import TaskSet, background_loops, stop_tasks


async def test_a_task_set_holds_its_tasks_until_done_and_returns_their_results() -> None:
    tasks = TaskSet()
    release = asyncio.Event()

    async def work() -> int:
        await release.wait()
        return 7

    task = tasks.spawn(work(), name="work")
    assert len(tasks) == 1
    release.set()
    assert await task == 7
    await asyncio.sleep(0)  # the done callback runs on the next loop turn
    assert len(tasks) == 0


async def test_closing_lets_quick_work_finish_and_cancels_what_hangs() -> None:
    tasks = TaskSet()
    finished: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0)
        finished.append("quick")

    async def hangs() -> None:
        await asyncio.Event().wait()

    async def crashes() -> None:
        raise RuntimeError("boom")

    quick_task = tasks.spawn(quick(), name="quick")
    hanging = tasks.spawn(hangs(), name="hangs")
    crashing = tasks.spawn(crashes(), name="crashes")
    await tasks.aclose(timeout_s=0.5)
    assert finished == ["quick"]
    assert quick_task.done()
    assert not quick_task.cancelled()
    assert hanging.cancelled()
    assert isinstance(crashing.exception(), RuntimeError)
    assert len(tasks) == 0


async def test_stop_tasks_waits_for_loops_that_stop_and_cancels_the_rest() -> None:
    stop = asyncio.Event()
    stopped: list[str] = []

    async def obedient() -> None:
        await stop.wait()
        stopped.append("obedient")

    async def stubborn() -> None:
        while True:
            await asyncio.sleep(3600)

    async def failing() -> None:
        await stop.wait()
        raise RuntimeError("failed on the way out")

    loops = [
        asyncio.create_task(obedient()),
        asyncio.create_task(stubborn()),
        asyncio.create_task(failing()),
    ]
    stop.set()
    await stop_tasks(loops, timeout_s=0.5)  # the failure is not raised again
    assert stopped == ["obedient"]
    assert loops[1].cancelled()
    assert all(task.done() for task in loops)
    await stop_tasks([])  # nothing to stop


async def test_background_loops_are_told_to_stop_and_awaited_on_the_way_out() -> None:
    stopped: list[str] = []

    async def obedient(stop: asyncio.Event) -> None:
        await stop.wait()
        stopped.append("obedient")

    async def stubborn() -> None:
        while True:
            await asyncio.sleep(3600)

    async with background_loops(timeout_s=0.5) as loops:
        loops.start(obedient(loops.stop), name="obedient")
        loops.start(stubborn(), name="stubborn")
        assert len(loops) == 2
        assert not loops.stop.is_set()
        tasks = {task.get_name(): task for task in asyncio.all_tasks()}
    assert loops.stop.is_set()
    assert stopped == ["obedient"]
    assert tasks["stubborn"].cancelled()
    assert tasks["obedient"].done()


async def test_a_lifespan_may_ask_its_loops_to_stop_before_it_leaves() -> None:
    order: list[str] = []

    async def loop(stop: asyncio.Event) -> None:
        await stop.wait()
        order.append("loop saw stop")

    async with background_loops() as loops:
        loops.start(loop(loops.stop), name="loop")
        loops.stop.set()
        await asyncio.sleep(0)
        order.append("lifespan shuts down what the loop used")
    assert order == ["loop saw stop", "lifespan shuts down what the loop used"]
