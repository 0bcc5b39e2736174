"""The project's own container engine: Debian's docker.io dockerd, started with its own state
folder (data root, exec root, pidfile, unix socket, log) so it never collides with a system
engine, and stopped by its pid.

    ensure_installed()  apt-get install docker.io docker-compose debootstrap (once, idempotent)
    start()             dockerd with overlay2, bridge networking and iptables; waits for its API
    stop()              SIGTERM by pid, waits for it and its containerd children, removes the
                        docker0 bridge and iptables chains it added
    status()            running / stopped / an engine that is not ours answers
    env()               DOCKER_HOST, PATH (Debian's CLI first), DOCKER_BUILDKIT, ... for callers

The state folder is `MLOPS_ENGINE_DIR`, default /var/lib/mlops-engine: one engine per machine
(two dockerds would fight over docker0), and outside the platform's data folder (.mlops), which
`run.sh all down --volumes` deletes.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mlops_platform.engine import network
from mlops_platform.launcher.system_packages import apt_install

DEFAULT_ROOT = Path("/var/lib/mlops-engine")
PACKAGES = ("docker.io", "docker-compose", "debootstrap")
DOCKERD = Path("/usr/sbin/dockerd")
DEBIAN_DOCKER = Path("/usr/bin/docker")
DEBIAN_COMPOSE = Path("/usr/bin/docker-compose")
DEFAULT_SOCKET = Path("/var/run/docker.sock")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
CHILDREN_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 20
PROC = Path("/proc")

Run = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]
State = Literal["running", "stopped", "external"]


class EngineError(RuntimeError):
    """The engine could not be installed, started or stopped; the message says why."""


def run_quiet(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=30, check=False)


@dataclass(frozen=True)
class EngineLayout:
    """Where the engine keeps everything; nothing of it lies outside `root` (see `under`)."""

    root: Path
    data_root: Path
    exec_root: Path
    pidfile: Path
    socket: Path
    log: Path
    #: the host's networking before dockerd started: what stop() may remove
    network_snapshot: Path

    @classmethod
    def under(cls, root: Path) -> EngineLayout:
        return cls(
            root=root,
            data_root=root / "data",
            exec_root=root / "exec",
            pidfile=root / "dockerd.pid",
            socket=root / "docker.sock",
            log=root / "dockerd.log",
            network_snapshot=root / "network-before.json",
        )

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"


def default_layout(environ: Mapping[str, str] | None = None) -> EngineLayout:
    raw = (environ if environ is not None else os.environ).get("MLOPS_ENGINE_DIR", "").strip()
    return EngineLayout.under(Path(raw).resolve() if raw else DEFAULT_ROOT)


@dataclass(frozen=True)
class EngineStatus:
    state: State
    host: str
    pid: int | None = None
    version: str = ""
    detail: str = ""


# --- install ------------------------------------------------------------------------------


def missing_packages(run: Run = run_quiet) -> list[str]:
    """The engine packages dpkg does not list as installed."""
    missing = []
    for package in PACKAGES:
        result = run(["dpkg-query", "-W", "-f=${Status}", package])
        if result.returncode != 0 or "install ok installed" not in result.stdout:
            missing.append(package)
    return missing


def ensure_installed(
    run: Run = run_quiet,
    install: Callable[[list[str]], None] = apt_install,
) -> list[str]:
    """Install the missing engine packages (apt-get update once, then install); returns them."""
    missing = missing_packages(run)
    if not missing:
        return []
    if os.geteuid() != 0:
        raise EngineError(
            "the engine needs the Debian packages "
            + " ".join(missing)
            + " and root to run dockerd: run as root (sudo ./run.sh engine up)"
        )
    try:
        install(missing)
    except subprocess.CalledProcessError as exc:
        raise EngineError(f"apt-get failed installing {' '.join(missing)}: {exc}") from exc
    still = missing_packages(run)
    if still:
        raise EngineError(f"installed {' '.join(missing)} but dpkg still misses {' '.join(still)}")
    return missing


# --- probing --------------------------------------------------------------------------------


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def api_get(sock: Path, path: str, timeout: float = 3.0) -> str | None:
    """GET `path` from the engine API on a unix socket; None when it does not answer 200."""
    if not sock.exists():
        return None
    conn = _UnixHTTPConnection(sock, timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace")
        return body if response.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


def ping(sock: Path) -> bool:
    return api_get(sock, "/_ping") == "OK"


def server_version(sock: Path) -> str:
    body = api_get(sock, "/version")
    if body is None:
        return ""
    data = json.loads(body)
    return f"{data.get('Version', '?')} (API {data.get('ApiVersion', '?')})"


def external_engine_answers(
    layout: EngineLayout, environ: Mapping[str, str], run: Run = run_quiet
) -> bool:
    """True when an engine that is not this project's answers with the caller's DOCKER_HOST (or
    the default socket when unset)."""
    host = environ.get("DOCKER_HOST", "").strip()
    if host == layout.host:
        return False
    if not host or host.startswith("unix://"):
        return ping(Path(host.removeprefix("unix://")) if host else DEFAULT_SOCKET)
    cli = DEBIAN_DOCKER if DEBIAN_DOCKER.exists() else Path("docker")
    return run([str(cli), "info", "--format", "{{.ServerVersion}}"]).returncode == 0


# --- processes ------------------------------------------------------------------------------


def cmdline(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def read_pid(layout: EngineLayout) -> int | None:
    try:
        return int(layout.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def is_our_dockerd(pid: int, layout: EngineLayout) -> bool:
    """The process is a dockerd running on this layout's data root (never another engine)."""
    args = cmdline(pid)
    return (
        bool(args)
        and Path(args[0]).name == "dockerd"
        and (f"--data-root={layout.data_root}" in args)
    )


def running_pid(layout: EngineLayout) -> int | None:
    pid = read_pid(layout)
    return pid if pid is not None and is_our_dockerd(pid, layout) else None


def engine_children(layout: EngineLayout) -> list[int]:
    """containerd and its shims started by this engine: their command lines name its exec
    root (containerd's socket lives there)."""
    needle = str(layout.exec_root)
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            args = cmdline(int(entry.name))
            if args and "containerd" in Path(args[0]).name and any(needle in a for a in args):
                found.append(int(entry.name))
    return sorted(found)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = PROC / str(pid) / "stat"
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_gone(pids: Sequence[int], timeout: float) -> list[int]:
    """Wait until none of `pids` is alive; returns the ones still alive at the deadline."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [p for p in left if alive(p)]
    return left


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        return log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def failure_cause(tail: Sequence[str]) -> str:
    """The most telling line of dockerd's log: the last fatal or error line."""
    for marker in ("level=fatal", "failed to start daemon", "level=error"):
        for line in reversed(tail):
            if marker in line:
                return line.split("msg=", 1)[-1].strip().strip('"')
    return tail[-1].strip() if tail else "no output in the log"


# --- start / stop ---------------------------------------------------------------------------


def dockerd_command(layout: EngineLayout) -> list[str]:
    """dockerd with overlay2, bridge networking and iptables, all its state under the layout."""
    return [
        str(DOCKERD),
        "--storage-driver=overlay2",
        f"--data-root={layout.data_root}",
        f"--exec-root={layout.exec_root}",
        f"--pidfile={layout.pidfile}",
        f"--host={layout.host}",
        "--iptables=true",
        "--ip-forward=true",
        # the engine must not outlive itself in containers: a stop stops them
        "--live-restore=false",
    ]


def _clear_stale(layout: EngineLayout) -> None:
    """Leftovers of a dockerd that is gone (a crash, a reboot): dockerd refuses a live-looking
    pidfile and a socket path that exists."""
    if running_pid(layout) is None:
        layout.pidfile.unlink(missing_ok=True)
        layout.socket.unlink(missing_ok=True)


def _spawn(layout: EngineLayout) -> subprocess.Popen[bytes]:
    for folder in (layout.root, layout.data_root, layout.exec_root):
        folder.mkdir(parents=True, exist_ok=True)
    layout.root.chmod(0o711)
    with layout.log.open("ab") as log:
        log.write(f"\n--- mlops engine start {time.strftime('%Y-%m-%dT%H:%M:%S')} ---\n".encode())
        log.flush()
        return subprocess.Popen(
            dockerd_command(layout),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )


def _wait_api(process: subprocess.Popen[bytes], layout: EngineLayout, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping(layout.socket):
            return
        if process.poll() is not None:
            what = f"dockerd exited with code {process.returncode}"
            raise EngineError(_start_failure(layout, what))
        time.sleep(0.25)
    raise EngineError(_start_failure(layout, f"dockerd did not answer within {timeout:.0f} s"))


def _start_failure(layout: EngineLayout, what: str) -> str:
    tail = log_tail(layout.log)
    return (
        f"the engine did not start: {what}: {failure_cause(tail)}\n"
        f"last lines of {layout.log}:\n" + "\n".join(f"  {line}" for line in tail)
    )


def start(
    layout: EngineLayout | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT_S,
) -> str:
    """Start the engine unless one answers already; returns what was done. On failure nothing
    is left running and EngineError carries the cause and dockerd's last log lines."""
    layout = layout or default_layout()
    environ = os.environ if environ is None else environ
    if external_engine_answers(layout, environ):
        return "a container engine already answers (docker info ok): nothing to do"
    pid = running_pid(layout)
    if pid is not None and ping(layout.socket):
        return f"the engine already runs (pid {pid}, {layout.host})"
    if pid is not None:
        _stop_pid(pid, layout)
    _clear_stale(layout)
    if not DOCKERD.exists():
        raise EngineError(f"{DOCKERD} is missing: run ensure_installed() (./run.sh engine up)")
    before = network.take_snapshot()
    layout.root.mkdir(parents=True, exist_ok=True)
    if not layout.network_snapshot.exists():
        network.save(before, layout.network_snapshot)
    started = time.monotonic()
    process = _spawn(layout)
    try:
        _wait_api(process, layout, timeout)
    except EngineError:
        _abort(process, layout)
        raise
    seconds = time.monotonic() - started
    return (
        f"the engine runs: pid {process.pid}, {layout.host}, "
        f"dockerd {server_version(layout.socket)}, API up in {seconds:.1f} s"
    )


def _abort(process: subprocess.Popen[bytes], layout: EngineLayout) -> None:
    """A failed start leaves nothing behind: the process, its children, networking, pid."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _after_exit(layout)


def _stop_pid(pid: int, layout: EngineLayout, timeout: float = STOP_TIMEOUT_S) -> list[str]:
    notes = []
    os.kill(pid, signal.SIGTERM)
    if wait_gone([pid], timeout):
        os.kill(pid, signal.SIGKILL)
        wait_gone([pid], 10)
        notes.append(f"dockerd (pid {pid}) ignored SIGTERM for {timeout:.0f} s: killed")
    return notes + _after_exit(layout)


def _after_exit(layout: EngineLayout) -> list[str]:
    """After dockerd is gone: its containerd children, networking leftovers, pid and socket."""
    notes = []
    children = wait_gone(engine_children(layout), CHILDREN_TIMEOUT_S)
    for child in children:
        os.kill(child, signal.SIGKILL)
        notes.append(f"containerd child {child} outlived dockerd: killed")
    wait_gone(children, 5)
    before = network.load(layout.network_snapshot)
    if before is not None:
        notes += network.restore(before)
        layout.network_snapshot.unlink(missing_ok=True)
    layout.pidfile.unlink(missing_ok=True)
    layout.socket.unlink(missing_ok=True)
    return notes


def stop(layout: EngineLayout | None = None) -> list[str]:
    """Stop the engine started by start(); returns what was done, one line each."""
    layout = layout or default_layout()
    pid = running_pid(layout)
    if pid is None:
        leftovers = _after_exit(layout) if layout.root.exists() else []
        return ["the engine is not running", *leftovers]
    started = time.monotonic()
    notes = _stop_pid(pid, layout)
    return [f"stopped dockerd (pid {pid}) in {time.monotonic() - started:.1f} s", *notes]


def status(
    layout: EngineLayout | None = None,
    environ: Mapping[str, str] | None = None,
) -> EngineStatus:
    layout = layout or default_layout()
    environ = os.environ if environ is None else environ
    pid = running_pid(layout)
    if pid is not None and ping(layout.socket):
        return EngineStatus("running", layout.host, pid, server_version(layout.socket))
    if external_engine_answers(layout, environ):
        host = environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
        return EngineStatus("external", host, detail="an engine that is not the project's")
    detail = f"dockerd pid {pid} does not answer" if pid is not None else ""
    return EngineStatus("stopped", layout.host, pid, detail=detail)


# --- what callers use -------------------------------------------------------------------------


def env(
    layout: EngineLayout | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables a docker or compose command needs to use this engine and build offline:
    its socket, Debian's 20.10 CLI first on PATH (the preinstalled CLI 28 has no buildx and
    cannot build with BuildKit), BuildKit for builds; compose v1 builds through the CLI, compose
    v2 (2.40) through the daemon's BuildKit: it warns that bake needs buildx and falls back."""
    layout = layout or default_layout()
    environ = os.environ if environ is None else environ
    rest = [p for p in environ.get("PATH", os.defpath).split(os.pathsep) if p and p != "/usr/bin"]
    return {
        "DOCKER_HOST": layout.host,
        "PATH": os.pathsep.join(["/usr/bin", *rest]),
        "DOCKER_BUILDKIT": "1",
        "COMPOSE_DOCKER_CLI_BUILD": "1",
    }


def runtime_env(
    environ: Mapping[str, str] | None = None, layout: EngineLayout | None = None
) -> dict[str, str]:
    """What the docker runtime adds to its environment: nothing when the caller's engine
    answers, this engine's env() when only it answers."""
    layout = layout or default_layout(environ)
    environ = os.environ if environ is None else environ
    if external_engine_answers(layout, environ):
        return {}
    if ping(layout.socket):
        return env(layout, environ)
    return {}
