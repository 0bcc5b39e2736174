"""Process-tree facts (psutil): the processes of a supervised program and their memory."""

from __future__ import annotations

import psutil


def tree(roots: list[int]) -> list[psutil.Process]:
    """The live processes of `roots` and every process below them (each once)."""
    found: dict[int, psutil.Process] = {}
    for pid in roots:
        if pid <= 0:
            continue
        try:
            root = psutil.Process(pid)
            members = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        found.update((p.pid, p) for p in members)
    return list(found.values())


def pss_mib(processes: list[psutil.Process]) -> float:
    """Proportional set size of `processes` together, MiB (gone or unreadable ones count 0)."""
    total = 0
    for process in processes:
        try:
            total += process.memory_full_info().pss
        except psutil.Error:
            continue
    return total / 2**20
