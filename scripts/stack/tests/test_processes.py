"""Child processes never outlive the runner: groups are stopped, leftovers reaped."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from storefront_stack.processes import FREE_PORT_RANGE, ManagedProcess, PidRegistry, free_port

# A parent that starts a grandchild and ignores SIGTERM, like a launcher script would.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_stop_takes_down_the_whole_process_group(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    process = ManagedProcess("stubborn", [sys.executable, "-c", STUBBORN], log_file=log).start()
    deadline = time.monotonic() + 10
    while not log.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(log.read_text().split()[0])
    assert _alive(grandchild)
    process.stop(timeout=1)
    assert not process.running
    assert not _alive(grandchild)


def test_output_is_prefixed_with_the_process_name() -> None:
    lines: list[tuple[str, str]] = []
    process = ManagedProcess(
        "greeter",
        [sys.executable, "-c", "print('hello'); print('world')"],
        echo=lambda name, line: lines.append((name, line)),
    ).start()
    assert process.process is not None
    process.process.wait(10)
    time.sleep(0.2)
    assert lines == [("greeter", "hello"), ("greeter", "world")]


def test_next_run_reaps_what_a_crashed_run_left_behind(tmp_path: Path) -> None:
    registry = PidRegistry(tmp_path / "pids.json")
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    registry.add("orphan", orphan.pid)
    assert registry.kill_leftovers() == ["orphan"]
    orphan.wait(5)
    assert orphan.returncode == -signal.SIGKILL
    assert not (tmp_path / "pids.json").exists()


def test_registry_forgets_processes_stopped_cleanly(tmp_path: Path) -> None:
    registry = PidRegistry(tmp_path / "pids.json")
    process = ManagedProcess(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(600)"], registry=registry
    ).start()
    assert "sleeper" in (tmp_path / "pids.json").read_text()
    process.stop()
    assert registry.kill_leftovers() == []
    assert os.getpgid(os.getpid())  # the test process itself is untouched


def test_free_port_never_hands_out_a_port_twice() -> None:
    # A stopped service's port is free until it restarts: it must not be chosen for
    # another server meanwhile. 400 draws from 10,000 ports would repeat one by chance
    # (99 % likely) if the ports handed out were not remembered.
    ports = [free_port() for _ in range(400)]
    assert len(set(ports)) == len(ports)
    assert all(port in FREE_PORT_RANGE for port in ports)
