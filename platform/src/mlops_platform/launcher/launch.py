"""Process wrapper used by supervisord: load a JSON environment file, then exec the command.

Keeps secrets and JSON-valued settings out of supervisord's config syntax:
`python -m mlops_platform.launcher.launch <env.json> -- <command> [args…]`. The command dies
with supervisord (PR_SET_PDEATHSIG survives the exec).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process (and what it execs into) when supervisord dies,
    so that a killed supervisord leaves no service behind."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        sys.exit(
            "usage: python -m mlops_platform.launcher.launch <env.json> -- <command> [args...]"
        )
    with open(argv[0], encoding="utf-8") as handle:
        extra = json.load(handle)
    die_with_parent()
    os.execvpe(argv[2], argv[2:], {**os.environ, **extra})


if __name__ == "__main__":
    main(sys.argv[1:])
