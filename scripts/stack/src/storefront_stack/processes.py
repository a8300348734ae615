"""Child processes that are always cleaned up: own session, parent-death signal, pid registry."""

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import psutil

from storefront_stack.users import run_as_kwargs

__all__ = ["ManagedProcess", "PidRegistry", "free_port", "frozen", "listening_pid"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # If the runner is killed outright, the kernel still stops its children.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


#: Where :func:`free_port` looks: below the kernel's ephemeral range (32768-60999 by
#: default), and apart from the Redis Cluster nodes' 20000-40000 (infra).
FREE_PORT_RANGE = range(10000, 20000)


def listening_pid(url: str) -> int:
    """The process listening on the TCP port of ``url`` (say, a server to freeze with
    SIGSTOP); a ``LookupError`` when none does."""
    port = urlsplit(url).port
    for connection in psutil.net_connections(kind="tcp"):
        listening = connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
        if listening and connection.pid is not None:
            return int(connection.pid)
    raise LookupError(f"nothing listens on {url}")


@contextlib.contextmanager
def frozen(*pids: int) -> Iterator[None]:
    """SIGSTOP ``pids`` (what a hung server looks like to its clients); SIGCONT them
    however the block ends."""
    stopped: list[int] = []
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        yield
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


#: Every port :func:`free_port` returned in this process (never returned again).
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now, from :data:`FREE_PORT_RANGE`.

    A port is chosen seconds before its server binds it. A port the kernel hands out
    for ``bind(0)`` comes from the ephemeral range, which every outgoing connection
    meanwhile draws its local port from too (the services starting up open hundreds to
    PostgreSQL and Redis): one of them took the gateway's port once, and nginx could
    not start. Below that range only another server's choice can collide.

    Nor is a port handed out twice by one process: a service a test stops and starts
    again rebinds its own port, which is free while it is down, and another server
    chosen meanwhile took it once (catalog could not come back, and every later test of
    the run failed on it).
    """
    import random
    import socket

    for port in random.sample(FREE_PORT_RANGE, 200):
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            _HANDED_OUT.add(port)
            return port
    with socket.socket() as sock:  # the range is crowded: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PidRegistry:
    """Remembers the process groups a run started, so the next run can clean up after a crash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _read(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): int(v) for k, v in data.items()}

    def add(self, name: str, pid: int) -> None:
        with self._lock:
            data = self._read()
            data[name] = pid
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(data))

    def remove(self, name: str) -> None:
        with self._lock:
            data = self._read()
            data.pop(name, None)
            self.path.write_text(json.dumps(data))

    def kill_leftovers(self) -> list[str]:
        """Stop every process group a previous, crashed run left behind."""
        killed = []
        for name, pid in self._read().items():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
                killed.append(name)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        return killed


class ManagedProcess:
    """One child process in its own session whose output is prefixed or written to a file."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_file: Path | None = None,
        unprivileged: bool = False,
        registry: PidRegistry | None = None,
        echo: Callable[[str, str], None] | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.log_file = log_file
        self.unprivileged = unprivileged
        self.registry = registry
        self.echo = echo
        self.process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self._pump: threading.Thread | None = None

    def start(self) -> "ManagedProcess":
        """Start the process (non-blocking)."""
        stdout: int | IO[bytes]
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log_handle = self.log_file.open("ab")
            stdout = self._log_handle
        else:
            stdout = subprocess.PIPE
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=self.cwd,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # no threads hold locks at fork time here
            **(run_as_kwargs() if self.unprivileged else {}),
        )
        if self.registry is not None:
            self.registry.add(self.name, self.process.pid)
        if self.log_file is None:
            self._pump = threading.Thread(target=self._pump_output, daemon=True)
            self._pump.start()
        return self

    def _pump_output(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        with self.process.stdout as stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip()
                if self.echo:
                    self.echo(self.name, line)
                else:
                    sys.stdout.write(f"{self.name:>14} | {line}\n")
                    sys.stdout.flush()

    @property
    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.process is not None and self.process.poll() is None

    def stop(self, *, timeout: float = 15.0, sig: int = signal.SIGTERM) -> None:
        """Signal the whole process group, wait, then kill what is left."""
        if self.process is None:
            return
        pgid = self.process.pid
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
                self.process.wait(5)
        # Grandchildren (a JVM under a launcher) may outlive the leader: sweep the group.
        deadline = time.monotonic() + timeout
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        if self.registry is not None:
            self.registry.remove(self.name)
        if self._pump is not None:
            self._pump.join(timeout=5)
        if self._log_handle is not None:
            self._log_handle.close()

    def kill(self) -> None:
        """SIGKILL the process group at once (crash tests)."""
        self.stop(timeout=5.0, sig=signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    for proc in psutil.process_iter(["pid"]):
        # A process may exit between the listing and the look-up: that is not an error.
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
    return False
