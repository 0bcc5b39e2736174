"""The project's container engine (mlops_platform.engine.engine), without a real dockerd.

A real dockerd needs root, iptables and a few seconds; these tests use a fake `dockerd` (a small
Python program run under the name `dockerd`, so the engine's pid check accepts it) that answers
the engine API's /_ping and /version on the unix socket it is given, or fails the way dockerd
fails. The host's networking is never touched here: the iptables snapshot and restore are
replaced by recorders (the real ones are exercised by `./run.sh engine up/down`, see
docs/engine-notes.md)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlops_platform.engine import engine, network

FAKE_DOCKERD = textwrap.dedent('''
    """A fake dockerd: FAKE_MODE=serve answers /_ping, fail exits like a daemon that cannot
    start, hang never answers."""
    import json, os, signal, socket, sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer

    args = dict(a.split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    mode = os.environ.get("FAKE_MODE", "serve")
    print('time="2026-01-01T00:00:00Z" level=info msg="Starting up"', flush=True)
    if mode == "fail":
        print('time="2026-01-01T00:00:01Z" level=info msg="loading plugin"', flush=True)
        print('failed to start daemon: error initializing graphdriver: driver not supported',
              flush=True)
        sys.exit(1)
    if mode == "hang":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        time.sleep(600)
        sys.exit(0)
    with open(args["--pidfile"], "w") as handle:
        handle.write(str(os.getpid()))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"OK" if self.path == "/_ping" else json.dumps(
                {"Version": "20.10.24-fake", "ApiVersion": "1.41"}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    class UnixServer(HTTPServer):
        address_family = socket.AF_UNIX

        def server_bind(self):
            self.socket.bind(self.server_address)

        def get_request(self):
            request, _ = self.socket.accept()
            return request, ("local", 0)

    path = args["--host"].removeprefix("unix://")
    server = UnixServer(path, Handler)
    signal.signal(signal.SIGTERM, lambda *_: (os.unlink(path), os._exit(0)))
    server.serve_forever()
''')


class _UnixHTTPServer(HTTPServer):
    address_family = socket.AF_UNIX

    def server_bind(self) -> None:
        self.socket.bind(self.server_address)

    def get_request(self) -> tuple[Any, Any]:
        request, _ = self.socket.accept()
        return request, ("local", 0)


class _PingHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def other_engine(tmp_path: Path) -> Iterator[Path]:
    """An engine that is not the project's: something answering /_ping on a unix socket."""
    path = tmp_path / "other.sock"
    server = _UnixHTTPServer(str(path), _PingHandler)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()


@pytest.fixture
def layout(tmp_path: Path) -> engine.EngineLayout:
    # short: a unix socket path must stay under 108 bytes
    return engine.EngineLayout.under(tmp_path / "e")


@pytest.fixture
def fake_dockerd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """engine.DOCKERD replaced by the fake, run as `dockerd` (argv[0]) like the real one."""
    program = tmp_path / "fake_dockerd.py"
    program.write_text(FAKE_DOCKERD)
    wrapper = tmp_path / "dockerd"
    # argv[0] "dockerd" hides where Python lives: PYTHONHOME says it (the fake needs the
    # standard library only)
    system = Path("/usr/bin/python3")  # Debian's; else the interpreter this venv is based on
    home, python = (
        (Path("/usr"), system)
        if system.exists()
        else (Path(sys.base_prefix), Path(sys.base_prefix) / "bin" / "python3")
    )
    wrapper.write_text(
        f'#!/bin/bash\nPYTHONHOME={home} exec -a dockerd {python} -I {program} "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setattr(engine, "DOCKERD", wrapper)
    return wrapper


@pytest.fixture
def networking(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records snapshot and restore instead of running iptables on this host."""
    calls: list[str] = []

    def snapshot(*args: Any, **kwargs: Any) -> network.NetSnapshot:
        calls.append("snapshot")
        return network.NetSnapshot({"filter": ["-P FORWARD ACCEPT"]}, frozenset())

    def restore(before: network.NetSnapshot, *args: Any, **kwargs: Any) -> list[str]:
        calls.append("restore")
        return []

    monkeypatch.setattr(network, "take_snapshot", snapshot)
    monkeypatch.setattr(network, "restore", restore)
    return calls


def no_engine_env(tmp_path: Path) -> dict[str, str]:
    """A caller whose default engine does not answer (a socket path that does not exist)."""
    return {"DOCKER_HOST": f"unix://{tmp_path / 'nothing.sock'}", "PATH": "/usr/local/bin:/bin"}


def processes_named(needle: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle.encode() in (entry / "cmdline").read_bytes() and engine.alive(
                    int(entry.name)
                ):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


# --- command construction ---------------------------------------------------------------------


def test_dockerd_command_keeps_all_state_under_the_layout(layout: engine.EngineLayout) -> None:
    command = engine.dockerd_command(layout)
    assert command[0] == "/usr/sbin/dockerd"
    assert "--storage-driver=overlay2" in command
    assert "--iptables=true" in command and "--bridge=none" not in command
    assert f"--data-root={layout.root}/data" in command
    assert f"--exec-root={layout.root}/exec" in command
    assert f"--pidfile={layout.root}/dockerd.pid" in command
    assert f"--host=unix://{layout.root}/docker.sock" in command
    values = [a.split("=", 1)[1] for a in command[1:]]
    paths = [v for v in values if v.startswith(("/", "unix"))]
    assert len(paths) == 4 and all(str(layout.root) in p for p in paths), paths


def test_default_layout_is_outside_the_platform_data_folder(tmp_path: Path) -> None:
    assert engine.default_layout({}).root == Path("/var/lib/mlops-engine")
    assert engine.default_layout({"MLOPS_ENGINE_DIR": str(tmp_path)}).root == tmp_path


def test_env_points_docker_at_the_engine_with_debians_cli_first(
    layout: engine.EngineLayout,
) -> None:
    env = engine.env(layout, {"PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert env["DOCKER_HOST"] == f"unix://{layout.socket}"
    assert env["PATH"].split(":") == ["/usr/bin", "/usr/local/bin", "/bin"]
    assert env["DOCKER_BUILDKIT"] == "1" and env["COMPOSE_DOCKER_CLI_BUILD"] == "1"


def test_failure_cause_prefers_the_fatal_line() -> None:
    tail = [
        'time="t" level=info msg="Starting up"',
        'time="t" level=fatal msg="failed to start daemon: pid file found, ensure docker is '
        'not running"',
        'time="t" level=info msg="stopping"',
    ]
    assert engine.failure_cause(tail) == (
        "failed to start daemon: pid file found, ensure docker is not running"
    )
    assert engine.failure_cause([]) == "no output in the log"


def test_missing_packages_asks_dpkg_for_each(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = {"docker.io"}

    def dpkg(command: Any) -> subprocess.CompletedProcess[str]:
        package = command[-1]
        status = "install ok installed" if package in installed else "unknown ok not-installed"
        return subprocess.CompletedProcess(command, 0 if package in installed else 1, status, "")

    assert engine.missing_packages(dpkg) == ["docker-compose", "debootstrap"]
    done: list[list[str]] = []

    def install(packages: list[str]) -> None:
        done.append(packages)
        installed.update(packages)

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert engine.ensure_installed(dpkg, install) == ["docker-compose", "debootstrap"]
    assert engine.ensure_installed(dpkg, install) == []  # idempotent: nothing to do
    assert done == [["docker-compose", "debootstrap"]]


# --- an engine already answers ----------------------------------------------------------------


@pytest.mark.usefixtures("fake_dockerd")
def test_an_engine_that_answers_means_nothing_to_do(
    other_engine: Path,
    layout: engine.EngineLayout,
    networking: list[str],
) -> None:
    environ = {"DOCKER_HOST": f"unix://{other_engine}"}
    assert engine.external_engine_answers(layout, environ)
    message = engine.start(layout, environ)
    assert "already answers" in message and "nothing to do" in message
    assert not layout.root.exists()  # nothing started, nothing written
    assert networking == []
    assert engine.status(layout, environ).state == "external"
    assert engine.runtime_env(environ, layout) == {}  # the caller's engine is used as it is


def test_the_projects_own_socket_is_not_an_external_engine(layout: engine.EngineLayout) -> None:
    assert not engine.external_engine_answers(layout, {"DOCKER_HOST": layout.host})


# --- start, status, stop ----------------------------------------------------------------------


@pytest.mark.usefixtures("fake_dockerd")
def test_start_status_stop_with_a_fake_dockerd(
    tmp_path: Path,
    layout: engine.EngineLayout,
    networking: list[str],
) -> None:
    environ = no_engine_env(tmp_path)
    message = engine.start(layout, environ, timeout=20)
    assert "the engine runs" in message and "20.10.24-fake" in message
    pid = engine.running_pid(layout)
    assert pid is not None and engine.alive(pid)
    state = engine.status(layout, environ)
    assert (state.state, state.pid) == ("running", pid)
    assert engine.runtime_env(environ, layout)["DOCKER_HOST"] == layout.host
    assert "already runs" in engine.start(layout, environ)  # a second up changes nothing

    lines = engine.stop(layout)
    assert lines[0].startswith(f"stopped dockerd (pid {pid})")
    assert not engine.alive(pid)
    assert not layout.pidfile.exists() and not layout.socket.exists()
    assert networking == ["snapshot", "restore"]
    assert engine.status(layout, environ).state == "stopped"
    assert engine.stop(layout)[0] == "the engine is not running"


@pytest.mark.usefixtures("fake_dockerd")
def test_dockerd_that_exits_gives_the_cause_and_the_log_tail(
    tmp_path: Path,
    layout: engine.EngineLayout,
    networking: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_MODE", "fail")
    with pytest.raises(engine.EngineError) as failure:
        engine.start(layout, no_engine_env(tmp_path), timeout=20)
    message = str(failure.value)
    assert "dockerd exited with code 1" in message
    # the cause, then the last lines of the log
    assert "error initializing graphdriver: driver not supported" in message.splitlines()[0]
    assert f"last lines of {layout.log}" in message
    assert 'msg="loading plugin"' in message
    # nothing half-started: no pidfile, no socket, networking put back
    assert not layout.pidfile.exists() and not layout.socket.exists()
    assert networking == ["snapshot", "restore"]


@pytest.mark.usefixtures("fake_dockerd")
def test_dockerd_that_never_answers_is_stopped(
    tmp_path: Path,
    layout: engine.EngineLayout,
    networking: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_MODE", "hang")
    with pytest.raises(engine.EngineError, match="did not answer within 2 s"):
        engine.start(layout, no_engine_env(tmp_path), timeout=2)
    assert processes_named(str(tmp_path / "fake_dockerd.py")) == []
    assert networking == ["snapshot", "restore"]


def test_stop_never_signals_a_process_that_is_not_our_dockerd(
    layout: engine.EngineLayout,
    networking: list[str],
) -> None:
    """A stale pidfile naming another process (pid reuse) is not obeyed."""
    other = subprocess.Popen(["sleep", "30"])
    try:
        layout.root.mkdir(parents=True)
        layout.pidfile.write_text(str(other.pid))
        assert engine.running_pid(layout) is None
        assert engine.stop(layout)[0] == "the engine is not running"
        assert other.poll() is None  # still running
    finally:
        other.send_signal(signal.SIGTERM)
        other.wait()


# --- networking cleanup (pure: what the commands would be) -------------------------------------

BEFORE = network.NetSnapshot(
    {
        "filter": [
            "-P INPUT ACCEPT",
            "-P FORWARD ACCEPT",
            "-P OUTPUT ACCEPT",
            "-A INPUT -i lo -j ACCEPT",
        ],
        "nat": ["-P PREROUTING ACCEPT", "-P POSTROUTING ACCEPT"],
    },
    frozenset(),
    "0",
)
AFTER = network.NetSnapshot(
    {
        "filter": [
            "-P INPUT ACCEPT",
            "-P FORWARD DROP",
            "-P OUTPUT ACCEPT",
            "-N DOCKER",
            "-N DOCKER-USER",
            "-A INPUT -i lo -j ACCEPT",
            "-A FORWARD -j DOCKER-USER",
            "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
            "-A FORWARD -i eth0 -j ACCEPT",
            "-A DOCKER-USER -j RETURN",
        ],
        "nat": [
            "-P PREROUTING ACCEPT",
            "-P POSTROUTING ACCEPT",
            "-N DOCKER",
            "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
        ],
    },
    frozenset({"docker0"}),
    "1",
)


def test_cleanup_removes_only_what_dockerd_added() -> None:
    commands = [" ".join(c) for c in network.cleanup_commands(BEFORE, AFTER, "iptables")]
    assert commands == [
        "iptables -t filter -D FORWARD -j DOCKER-USER",
        "iptables -t filter -D FORWARD -i docker0 ! -o docker0 -j ACCEPT",
        "iptables -t filter -D DOCKER-USER -j RETURN",
        "iptables -t nat -D POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
        "iptables -t filter -F DOCKER",
        "iptables -t filter -F DOCKER-USER",
        "iptables -t nat -F DOCKER",
        "iptables -t filter -X DOCKER",
        "iptables -t filter -X DOCKER-USER",
        "iptables -t nat -X DOCKER",
        "iptables -t filter -P FORWARD ACCEPT",
    ]
    # an operator's rule added meanwhile (not docker's) and the rules that were there stay
    assert not any("eth0" in c or "-i lo" in c for c in commands)
    assert network.link_commands(BEFORE, AFTER) == [["ip", "link", "delete", "docker0"]]


def test_cleanup_leaves_chains_that_existed_before() -> None:
    """Another engine's chains and bridge (there before ours started) are not ours to remove."""
    assert network.cleanup_commands(AFTER, AFTER, "iptables") == []
    assert network.link_commands(AFTER, AFTER) == []


def test_snapshot_round_trips_through_json(tmp_path: Path) -> None:
    network.save(AFTER, tmp_path / "n.json")
    assert network.load(tmp_path / "n.json") == AFTER
    assert network.load(tmp_path / "missing.json") is None
