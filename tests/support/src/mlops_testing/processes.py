"""Which processes a platform instance started (they carry MLOPS_INSTANCE=<data dir>)."""

from __future__ import annotations

import os

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
