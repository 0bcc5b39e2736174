"""The local runtime: every service a supervised process on this machine, state in one folder."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mlops_platform.launcher.health import wait_healthy
from mlops_platform.launcher.processes import pss_mib, tree
from mlops_platform.launcher.runtimes.supervisor import ProcessState, Supervisor
from mlops_platform.launcher.services import Context, Service

DEAD_STATES = {"FATAL", "EXITED", "STOPPED", "UNKNOWN"}


class PlatformError(RuntimeError):
    """A failure the operator must act on; the message says what and where to look."""


class LocalRuntime:
    name = "local"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.supervisor = Supervisor(ctx.data_dir)

    # -- lifecycle ----------------------------------------------------------------------
    def up(
        self,
        services: list[Service],
        *,
        build: bool = False,
        on_healthy: Callable[[str], None] | None = None,
    ) -> None:
        """Start `services` in order, each health-waited (then `on_healthy(name)`); `build` only
        matters for docker."""
        with self._lock():
            self.ctx.data_dir.mkdir(parents=True, exist_ok=True)
            self.supervisor.ensure_running()
            for service in services:
                self._up_one(service)
                if on_healthy is not None:
                    on_healthy(service.name)
        print("\nThe platform is up:")
        for service in services:
            for line in service.endpoints(self.ctx):
                print(f"  {line}")
        logs = self.ctx.data_dir / "logs"
        print(f"  Logs                ./run.sh <service> logs  (files under {logs})")

    def _up_one(self, service: Service) -> None:
        base_env = self.ctx.base_environment()
        programs = service.programs(self.ctx)
        group = service.name
        if programs and self._is_current(service, base_env) and self._healthy(service):
            print(f"* {group}: already up", flush=True)
            self._write_targets(service)
            return
        print(f"* {group}: starting ({service.description})", flush=True)
        service.prepare(self.ctx)
        programs = service.programs(self.ctx)
        if programs:
            changed = self.supervisor.write_group(group, programs, base_env)
            self.supervisor.update(force_restart=(group,) if changed else ())
        else:
            self.supervisor.remove_group_file(group)
            self.supervisor.update()
        watch = _CrashWatch(self.supervisor, group) if programs else None
        for check in service.checks(self.ctx):
            health = wait_healthy(
                check.name,
                check.probe,
                service.start_timeout,
                is_alive=watch.alive if watch else lambda: True,
            )
            if not health.healthy:
                raise PlatformError(
                    f"{group} did not become healthy: {health.detail}\n" + self._log_tail(group)
                )
        self._write_targets(service)

    def build(self, services: list[Service]) -> dict[str, int]:
        raise PlatformError("build makes container images: MLOPS_RUNTIME=docker ./run.sh all build")

    def down(self, services: list[Service], *, volumes: bool, everything: bool) -> None:
        if not self.ctx.data_dir.exists():
            print(f"* nothing to stop: {self.ctx.data_dir} does not exist", flush=True)
            return
        with self._lock():
            if everything:
                print("* stopping every platform process", flush=True)
                self.supervisor.shutdown()
            else:
                for service in services:
                    print(f"* {service.name}: stopping", flush=True)
                    self.supervisor.remove_group_file(service.name)
                    if self.supervisor.daemon_pid() is not None:
                        self.supervisor.update()
            for service in services:
                self._remove_targets(service)
        if volumes:
            root = self.ctx.data_dir
            doomed = [root] if everything else [root / service.name for service in services]
            for path in doomed:
                if path.exists():
                    print(f"* deleting {path}", flush=True)
                    shutil.rmtree(path)

    def status(self, services: list[Service]) -> bool:
        processes = self.supervisor.processes()
        all_healthy = True
        print(f"data: {self.ctx.data_dir}")
        for service in services:
            states = [p for p in processes if p.group == service.name]
            expected = service.programs(self.ctx)
            results = [(c.name, c.probe()) for c in service.checks(self.ctx)]
            healthy = all(h.healthy for _, h in results) and (
                not expected or (len(states) == len(expected) and not self._dead(states))
            )
            all_healthy &= healthy
            print(f"{service.name:<10} {'healthy' if healthy else 'UNHEALTHY'}")
            for p in states:
                mib = pss_mib(tree([p.pid]))
                print(f"    process {p.name:<22} {p.state:<9} {p.description}, {mib:.0f} MiB PSS")
            if expected and not states:
                print("    not running")
            for name, h in results:
                print(f"    check   {name:<22} {'ok' if h.healthy else 'FAIL':<9} {h.detail}")
        members = tree([p.pid for p in processes])
        print(f"memory: {pss_mib(members):.0f} MiB PSS in {len(members)} processes")
        return all_healthy

    def logs(self, service: Service, *, follow: bool, lines: int) -> int:
        files = self.supervisor.log_files(service.name)
        if not files:
            print(f"no logs for {service.name} under {self.supervisor.logs_dir}", file=sys.stderr)
            return 1
        args = ["tail", "-n", str(lines)] + (["-F"] if follow else []) + [str(f) for f in files]
        sys.stdout.flush()
        os.execvp("tail", args)

    # -- helpers ------------------------------------------------------------------------
    def _is_current(self, service: Service, base_env: dict[str, str]) -> bool:
        """Running with exactly the configuration it would be started with now."""
        programs = service.programs(self.ctx)
        states = self.supervisor.group_states(service.name)
        if len(states) != len(programs) or any(s.state != "RUNNING" for s in states):
            return False
        path = self.supervisor.program_file(service.name)
        if not path.exists() or path.read_text() != self.supervisor.render_group(
            service.name, programs, base_env
        ):
            return False
        for program in programs:
            env_file = self.supervisor.env_dir / f"{program.name}.json"
            wanted = {**base_env, **program.environment}
            if not env_file.exists() or json.loads(env_file.read_text()) != wanted:
                return False
        return True

    def _healthy(self, service: Service) -> bool:
        return all(check.probe().healthy for check in service.checks(self.ctx))

    @staticmethod
    def _dead(states: list[ProcessState]) -> bool:
        return not states or any(s.state in DEAD_STATES for s in states)

    def _log_tail(self, group: str, lines: int = 20) -> str:
        out = []
        for path in self.supervisor.log_files(group):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- last lines of {path}:\n" + "\n".join(tail))
        return "\n".join(out) or f"(no log files under {self.supervisor.logs_dir / group})"

    def _write_targets(self, service: Service) -> None:
        for job, targets in service.scrape_targets(self.ctx).items():
            path = self.ctx.data_dir / "prom-graf" / "targets" / f"{job}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            payload = [{"targets": targets, "labels": {"service": job}}]
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(payload, indent=1))
            tmp.replace(path)

    def _remove_targets(self, service: Service) -> None:
        for job in service.scrape_targets(self.ctx):
            (self.ctx.data_dir / "prom-graf" / "targets" / f"{job}.json").unlink(missing_ok=True)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.ctx.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.ctx.data_dir / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise PlatformError(
                    f"another run.sh is operating on {self.ctx.data_dir}; wait for it to finish"
                ) from exc
            yield


class _CrashWatch:
    """During a start: alive while no process of the group died or was restarted."""

    def __init__(self, supervisor: Supervisor, group: str) -> None:
        self.supervisor = supervisor
        self.group = group
        self.pids: dict[str, int] = {}

    def alive(self) -> bool:
        for state in self.supervisor.group_states(self.group):
            if state.state in DEAD_STATES or state.state == "BACKOFF":
                return False
            if state.pid and self.pids.setdefault(state.name, state.pid) != state.pid:
                return False  # exited and was restarted by supervisord: it crashed
        return True
