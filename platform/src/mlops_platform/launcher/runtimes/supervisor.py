"""A supervisord instance per data directory: config rendering and XML-RPC control."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from supervisor.xmlrpc import SupervisorTransport

from mlops_platform.launcher.private import write_private
from mlops_platform.launcher.reaper import EVENTS as REAPER_EVENTS
from mlops_platform.launcher.services.base import Program

RUNNING_STATES = {"RUNNING"}
REAPER = "mlops_platform.launcher.reaper"


@dataclass(frozen=True)
class ProcessState:
    name: str
    group: str
    state: str
    pid: int
    description: str


class Supervisor:
    """Owns `<data_dir>/supervisor`: the daemon's config, socket, pid file and program files."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.root = data_dir / "supervisor"
        self.conf = self.root / "supervisord.conf"
        self.socket = self.root / "supervisor.sock"
        self.pidfile = self.root / "supervisord.pid"
        self.programs_dir = self.root / "programs"
        self.env_dir = self.root / "env"
        self.logs_dir = data_dir / "logs"

    # -- daemon ---------------------------------------------------------------------------
    def _write_main_conf(self) -> None:
        for path in (self.root, self.programs_dir, self.env_dir, self.logs_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self.env_dir.chmod(0o700)
        write_private(
            self.conf,
            "\n".join(
                [
                    "[unix_http_server]",
                    f"file={self._escape(str(self.socket))}",
                    "chmod=0700",
                    "",
                    "[supervisord]",
                    f"logfile={self._escape(str(self.logs_dir / 'supervisord.log'))}",
                    f"pidfile={self._escape(str(self.pidfile))}",
                    "logfile_maxbytes=10MB",
                    "logfile_backups=2",
                    "",
                    "[rpcinterface:supervisor]",
                    "supervisor.rpcinterface_factory = "
                    "supervisor.rpcinterface:make_main_rpcinterface",
                    "",
                    "[supervisorctl]",
                    f"serverurl=unix://{self._escape(str(self.socket))}",
                    "",
                    # kills what a dead program left behind (mlops_platform.launcher.reaper)
                    "[eventlistener:mlops-reaper]",
                    f"command={self._escape(shlex.join([sys.executable, '-m', REAPER]))}",
                    f"events={REAPER_EVENTS}",
                    "autorestart=true",
                    f"stderr_logfile={self._escape(str(self.logs_dir / 'reaper.log'))}",
                    "",
                    "[include]",
                    f"files={self._escape(str(self.programs_dir))}/*.conf",
                    "",
                ]
            ),
        )

    def daemon_pid(self) -> int | None:
        """The supervisord pid when it is alive and answers on its socket."""
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        try:
            self._rpc().supervisor.getState()
        except OSError:
            return None
        return pid

    def ensure_running(self) -> None:
        if self.daemon_pid() is not None:
            return
        self._write_main_conf()
        subprocess.run(
            [str(Path(sys.executable).parent / "supervisord"), "-c", str(self.conf)], check=True
        )
        deadline = time.monotonic() + 15
        while self.daemon_pid() is None:
            if time.monotonic() > deadline:
                log = self.logs_dir / "supervisord.log"
                raise RuntimeError(f"supervisord did not start; see {log}")
            time.sleep(0.2)

    def shutdown(self, timeout: float = 90.0) -> None:
        """Stop every program and the daemon itself; wait until the daemon is gone."""
        pid = self.daemon_pid()
        if pid is None:
            return
        try:
            self._rpc().supervisor.shutdown()
        except (OSError, xmlrpc.client.Fault):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.2)

    # -- programs -------------------------------------------------------------------------
    def program_file(self, group: str) -> Path:
        return self.programs_dir / f"{group}.conf"

    def render_group(self, group: str, programs: list[Program], base_env: dict[str, str]) -> str:
        """The supervisord config of one service; environments go to 0600 JSON files that the
        `mlops_platform.launcher.launch` wrapper loads before exec'ing the real command."""
        sections = [f"[group:{group}]", f"programs={','.join(p.name for p in programs)}", ""]
        for program in programs:
            env_file = self.env_dir / f"{program.name}.json"
            command = [
                sys.executable,
                "-m",
                "mlops_platform.launcher.launch",
                str(env_file),
                "--",
                *program.command,
            ]
            log = self.logs_dir / group / f"{program.name}.log"
            sections += [
                f"[program:{program.name}]",
                f"command={self._escape(shlex.join(command))}",
                f"directory={self._escape(base_env.get('MLOPS_REPO_ROOT', '/'))}",
                "autostart=true",
                "autorestart=true",
                "startsecs=3",
                "startretries=3",
                "stopsignal=TERM",
                f"stopwaitsecs={program.stop_wait_seconds}",
                "stopasgroup=true",
                "killasgroup=true",
                "redirect_stderr=true",
                f"stdout_logfile={self._escape(str(log))}",
                "stdout_logfile_maxbytes=20MB",
                "stdout_logfile_backups=3",
                "",
            ]
        return "\n".join(sections)

    def write_group(self, group: str, programs: list[Program], base_env: dict[str, str]) -> bool:
        """Write the group's program file and env files; True when anything changed."""
        self.programs_dir.mkdir(parents=True, exist_ok=True)
        (self.logs_dir / group).mkdir(parents=True, exist_ok=True)
        changed = False
        for program in programs:
            env_file = self.env_dir / f"{program.name}.json"
            payload = json.dumps({**base_env, **program.environment}, sort_keys=True, indent=1)
            if not env_file.exists() or env_file.read_text() != payload:
                write_private(env_file, payload)
                changed = True
        text = self.render_group(group, programs, base_env)
        path = self.program_file(group)
        if not path.exists() or path.read_text() != text:
            write_private(path, text)
            changed = True
        return changed

    def remove_group_file(self, group: str) -> None:
        self.program_file(group).unlink(missing_ok=True)

    def update(self, force_restart: tuple[str, ...] = ()) -> None:
        """Apply program files like `supervisorctl update`: add new groups, restart changed
        ones (and those in `force_restart`, whose environment files changed), stop and remove
        deleted ones."""
        rpc = self._rpc().supervisor
        added, changed, removed = cast(list[list[list[str]]], rpc.reloadConfig())[0]
        loaded = {p.group for p in self.processes()}
        restart = [g for g in force_restart if g in loaded and g not in changed + removed]
        for group in removed + changed + restart:
            rpc.stopProcessGroup(group)
            rpc.removeProcessGroup(group)
        for group in changed + added + restart:
            rpc.addProcessGroup(group)

    def processes(self) -> list[ProcessState]:
        if self.daemon_pid() is None:
            return []
        infos = cast(list[dict[str, Any]], self._rpc().supervisor.getAllProcessInfo())
        return [
            ProcessState(i["name"], i["group"], i["statename"], int(i["pid"]), i["description"])
            for i in infos
        ]

    def group_states(self, group: str) -> list[ProcessState]:
        return [p for p in self.processes() if p.group == group]

    def log_files(self, group: str) -> list[Path]:
        return sorted((self.logs_dir / group).glob("*.log"))

    # -- internals ------------------------------------------------------------------------
    def _rpc(self) -> xmlrpc.client.ServerProxy:
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    @staticmethod
    def _escape(value: str) -> str:
        return value.replace("%", "%%")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
