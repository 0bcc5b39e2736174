"""A supervised program killed with SIGKILL leaves no orphan behind (issue 15, item 7).

supervisord starts every program in its own process group; when a program's main process dies,
whatever it had started (MLflow's uvicorn worker, say) must die with it instead of keeping the
port. The program here starts a child and execs into a second sleep: kill -9 of the main pid
must take the child with it, and supervisord restarts the program.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mlops_platform.launcher.runtimes.supervisor import Supervisor
from mlops_platform.launcher.services.base import Program

pytestmark = pytest.mark.integration


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    sup = Supervisor(tmp_path / "data")
    sup.ensure_running()
    program = Program("forker", ["sh", "-c", "sleep 300 & exec sleep 301"], stop_wait_seconds=5)
    sup.write_group("forker", [program], {"MLOPS_REPO_ROOT": str(tmp_path)})
    sup.update()
    try:
        yield sup
    finally:
        sup.shutdown(timeout=30)


def _running_pid(sup: Supervisor, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = sup.group_states("forker")
        if states and states[0].state == "RUNNING" and states[0].pid:
            return states[0].pid
        time.sleep(0.1)
    raise AssertionError(f"forker not running: {sup.group_states('forker')}")


def _group_members(pgid: int) -> list[int]:
    found = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
        except (OSError, psutil.Error):
            continue
    return found


def test_kill_9_of_a_program_takes_its_children_with_it(supervisor: Supervisor) -> None:
    pid = _running_pid(supervisor)
    deadline = time.monotonic() + 5
    while len(_group_members(pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_group_members(pid)) == 2
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _group_members(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group_members(pid) == [], "the killed program's child outlived it"
    assert _running_pid(supervisor) != pid


def test_the_services_die_with_supervisord(supervisor: Supervisor) -> None:
    pid = _running_pid(supervisor)
    daemon = supervisor.daemon_pid()
    assert daemon is not None
    os.kill(daemon, signal.SIGKILL)
    try:
        assert psutil.wait_procs([psutil.Process(pid)], timeout=5)[1] == []
    finally:  # the program's own child has no reaper left: this test's to clean up
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
