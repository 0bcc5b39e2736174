"""Which processes a platform instance started (they carry MLOPS_INSTANCE=<data dir>)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass

import psutil


def processes_with_env(key: str, value: str) -> list[int]:
    """Pids whose environment holds `key=value` (how the platform tags its processes)."""
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            environ = process.environ()
        except psutil.Error:
            continue
        if environ.get(key) == value:
            found.append(process.pid)
    return found


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Stop a process started with ``start_new_session=True`` and its children (its group, by
    its pid): SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@dataclass
class ProcessGroup:
    """A process started in a session of its own (``start_new_session=True``)."""

    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Stop the process and its children (its group), by its pid."""
        stop_process_group(self.process)
