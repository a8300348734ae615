"""An ASGI app under a real uvicorn on a loopback port, for tests: as the platform serves.

Every test that needs real connections (a stand-in another service calls, a service
over HTTP, replicas) builds the server the same way: quiet, on 127.0.0.1, with the
keep-alive the platform serves with (``storefront_kit.cli``: it outlasts the callers'
pool expiry, so a request never races an idle connection's close). Then it starts it in
its own event loop (:func:`start`) or in a thread (:func:`start_in_thread`). A test that
needs no socket talks to the app in-process instead (:func:`in_process`).
:class:`RunningService` is the base of a test's handle on a running service app.
"""

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, cast

import httpx
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storefront_kit.cli import KEEP_ALIVE_TIMEOUT_S
from storefront_kit.state import DatabaseState, service_state
from storefront_stack.processes import free_port

__all__ = [
    "RunningService",
    "in_process",
    "local_server",
    "start",
    "start_in_thread",
    "uvicorn_process",
]

S = TypeVar("S", bound=DatabaseState)


@asynccontextmanager
async def in_process(
    app: FastAPI, base_url: str, *, request_timeout_s: float = 30
) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` started (its lifespan, 30 s at most each way) and a client that speaks to
    it in-process at ``base_url`` (``request_timeout_s``: per request); stopped when the
    block ends."""
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=base_url, timeout=request_timeout_s
        ) as client,
    ):
        yield client


def local_server(app: Any, port: int, **config: Any) -> uvicorn.Server:
    """uvicorn for ``app`` on ``127.0.0.1:port``; ``config`` adds to uvicorn's ``Config``."""
    return uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_keep_alive=KEEP_ALIVE_TIMEOUT_S,
            **config,
        )
    )


async def start(server: uvicorn.Server, what: str = "uvicorn") -> "asyncio.Task[None]":
    """Serve in this event loop; the serving task, once the server listens.

    Stop it with ``server.should_exit = True`` and await the task.
    """
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), f"{what} did not start"
        await asyncio.sleep(0.02)
    return task


def start_in_thread(
    server: uvicorn.Server, what: str = "uvicorn", *, timeout_s: float = 30.0
) -> threading.Thread:
    """Serve in a daemon thread; the thread, once the server listens (``timeout_s`` at most).

    Stop it with ``server.should_exit = True`` and join the thread.
    """
    thread = threading.Thread(target=server.run, name=f"uvicorn-{what}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        assert thread.is_alive(), f"{what} died during start-up"
        assert time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.02)
    return thread


class RunningService(Generic[S]):
    """Base of a test's handle on a running service app: its lifespan state, typed.

    A subclass names its state class and declares its own fields (a dataclass)::

        @dataclass
        class Inventory(RunningService[InventoryState]):
            state_type = InventoryState
            app: FastAPI
            client: httpx.AsyncClient
    """

    app: FastAPI
    state_type: ClassVar[type[DatabaseState]]

    @property
    def state(self) -> S:
        """What the running app's lifespan built (its typed state)."""
        return cast(S, service_state(self.app, self.state_type))

    @property
    def engine(self) -> AsyncEngine:
        return self.state.engine

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self.state.sessionmaker


@contextmanager
def uvicorn_process(
    target: str,
    env: dict[str, str],
    *,
    port: int | None = None,
    log: Path | None = None,
    app_dir: Path | None = None,
    stop_timeout_s: float = 15.0,
) -> Iterator[str]:
    """``uvicorn --factory target`` in a process of its own; its URL once it is live.

    For what must not share the test's process (its own tracing or error reporting,
    set up from ``env``). Its output goes to ``log`` (or nowhere); it is terminated on
    the way out (killed after ``stop_timeout_s``).
    """
    port = port or free_port()
    args = [sys.executable, "-m", "uvicorn", target, "--factory", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--log-level", "warning"]
    if app_dir is not None:
        args += ["--app-dir", str(app_dir)]
    if log is None:
        process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
    else:
        with log.open("wb") as out:
            process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                output = f": {log.read_text()}" if log is not None else ""
                raise RuntimeError(f"{target} exited with {process.returncode}{output}")
            try:
                if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target} did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
