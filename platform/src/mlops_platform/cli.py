"""`mlops <service|all> <up|down|restart|status|logs|build>`: the entry point behind run.sh."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Protocol

from mlops_platform.engine import cli as engine_cli
from mlops_platform.launcher.bootstrap import BackgroundBootstrap, BootstrapError, BootstrapPlan
from mlops_platform.launcher.envfile import ensure_env_file
from mlops_platform.launcher.paths import REPO_ROOT
from mlops_platform.launcher.runtimes.docker import (
    DockerRuntime,
    docker_environment,
    find_compose,
)
from mlops_platform.launcher.runtimes.local import LocalRuntime, PlatformError
from mlops_platform.launcher.services import Context, Service, resolve, service_names
from mlops_platform.launcher.settings import LauncherSettings, launcher_env_file
from mlops_platform.launcher.system_packages import MissingSystemPackage

ACTIONS = ("up", "down", "restart", "status", "logs", "build")


class Runtime(Protocol):
    name: str

    def up(
        self,
        services: list[Service],
        *,
        build: bool,
        on_healthy: Callable[[str], None] | None = None,
    ) -> None: ...
    def down(self, services: list[Service], *, volumes: bool, everything: bool) -> None: ...
    def status(self, services: list[Service]) -> bool: ...
    def logs(self, service: Service, *, follow: bool, lines: int) -> int: ...
    def build(self, services: list[Service]) -> dict[str, int]: ...


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.sh",
        description="Run the MLOps platform's services (local processes or docker compose).",
        epilog="MLOPS_RUNTIME=auto|local|docker picks the runtime (default auto). "
        "`run.sh engine <up|down|status|env|images>` runs the project's own Docker engine.",
    )
    p.add_argument("service", choices=["all", *service_names()], help="a service, or all")
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("--build", action="store_true", help="docker: rebuild images before up")
    p.add_argument("--volumes", action="store_true", help="down: also delete the service's data")
    p.add_argument("--no-follow", action="store_true", help="logs: print and exit")
    p.add_argument("--lines", type=int, default=200, help="logs: how many lines to show")
    return p


def choose_runtime(ctx: Context) -> Runtime:
    wanted = ctx.settings.mlops_runtime
    env = docker_environment() if wanted in ("auto", "docker") else {}
    compose, why = find_compose(env) if wanted in ("auto", "docker") else (None, "")
    engine_note = f", engine {env['DOCKER_HOST']}" if env.get("DOCKER_HOST") else ""
    if wanted == "docker":
        if compose is None:
            raise PlatformError(
                f"MLOPS_RUNTIME=docker but {why}; start the project's engine with "
                "./run.sh engine up (or point DOCKER_HOST at yours), or use MLOPS_RUNTIME=local"
            )
        print(f"runtime: docker (MLOPS_RUNTIME=docker{engine_note}, {' '.join(compose)})")
        return DockerRuntime(ctx, compose, env)
    if wanted == "auto" and compose is not None:
        print(
            f"runtime: docker (auto: a working container engine and compose were found"
            f"{engine_note})"
        )
        return DockerRuntime(ctx, compose, env)
    reason = "MLOPS_RUNTIME=local" if wanted == "local" else "auto: no working container engine"
    print(f"runtime: local ({reason})")
    return LocalRuntime(ctx)


def up_with_bootstrap(
    runtime: Runtime, services: list[Service], settings: LauncherSettings, *, build: bool
) -> None:
    """`all up`, and bring the example project to a served champion when there is none: the
    bootstrap starts once the services its plan needs are healthy, while the others start."""
    if settings.mlops_bootstrap == "off":
        runtime.up(services, build=build)
        return
    background = BackgroundBootstrap(settings, BootstrapPlan.load(settings.bootstrap_plan))
    runtime.up(services, build=build, on_healthy=background.service_healthy)
    result = background.finish()
    if result.ran:
        print(f"* bootstrap: done in {result.seconds:.0f} s: {result.detail}, and serving answers")
    else:
        print(f"* bootstrap: not needed ({result.detail})")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["engine"]:
        # the project's own container engine (mlops_platform.engine), not a platform service
        return engine_cli.main(argv[1:])
    args = parser().parse_args(argv)
    env_file = launcher_env_file()
    if args.action in ("up", "restart"):
        result = ensure_env_file(REPO_ROOT / ".env.example", env_file)
        if result.created:
            print(
                f"wrote {env_file} with {len(result.generated)} fresh secrets "
                f"({', '.join(result.generated)})"
            )
    settings = LauncherSettings.load(env_file)
    ctx = Context(settings=settings, env_file=env_file)
    services = resolve(args.service)
    everything = args.service == "all"
    try:
        runtime = choose_runtime(ctx)
        if args.action in ("up", "restart"):
            missing = settings.missing_secrets()
            if missing:
                raise PlatformError(
                    f"empty secrets in {env_file}: {', '.join(missing)}; set them or delete the "
                    "file to have fresh ones generated"
                )
        started = time.monotonic()
        if args.action == "up":
            if everything:
                up_with_bootstrap(runtime, services, settings, build=args.build)
            else:
                runtime.up(services, build=args.build)
            print(f"up in {time.monotonic() - started:.1f}s")
        elif args.action == "down":
            runtime.down(services, volumes=args.volumes, everything=everything)
        elif args.action == "restart":
            runtime.down(services, volumes=False, everything=everything)
            if everything:
                up_with_bootstrap(runtime, services, settings, build=args.build)
            else:
                runtime.up(services, build=args.build)
        elif args.action == "status":
            return 0 if runtime.status(services) else 1
        elif args.action == "build":
            runtime.build(services)
        elif args.action == "logs":
            if everything:
                raise PlatformError("logs takes one service: ./run.sh <service> logs")
            return runtime.logs(services[0], follow=not args.no_follow, lines=args.lines)
    except (PlatformError, MissingSystemPackage, BootstrapError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
