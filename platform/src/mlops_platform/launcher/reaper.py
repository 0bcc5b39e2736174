"""supervisord event listener: when a program's main process ends, its process group goes too.

supervisord starts every program in a process group of its own (pgid = the program's pid) and
signals the group on a stop, but when the main process dies on its own (a crash, kill -9) the
processes it started stay behind as orphans: MLflow's uvicorn worker keeps the port and the
restarted server cannot bind it. This listener gets PROCESS_STATE_EXITED and _STOPPED events
and SIGKILLs what is left of the dead process's group. Run by supervisord as
`python -m mlops_platform.launcher.reaper`.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import TextIO

from supervisor import childutils

EVENTS = "PROCESS_STATE_EXITED,PROCESS_STATE_STOPPED"


def reap(payload: str) -> int | None:
    """Kill the process group of the process the event `payload` names; the pgid killed."""
    headers, _ = childutils.eventdata(payload + "\n")
    pid = int(headers.get("pid", "0"))
    if pid <= 1:
        return None
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:  # no process left in the group (the common case) or not ours
        return None
    return pid


def serve(stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
    while True:
        headers, payload = childutils.listener.wait(stdin, stdout)
        pgid = reap(payload)
        if pgid is not None:
            print(f"reaped process group {pgid} ({headers['eventname']})", file=sys.stderr)
            sys.stderr.flush()
        childutils.listener.ok(stdout)


if __name__ == "__main__":
    serve()
