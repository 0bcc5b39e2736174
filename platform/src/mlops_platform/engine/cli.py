"""`./run.sh engine <up|down|status|env|images>`: the project's own container engine."""

from __future__ import annotations

import argparse
import shlex
import time
from collections.abc import Callable

from mlops_platform.engine import airgap, engine

ACTIONS = ("up", "down", "status", "env", "images")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.sh engine",
        description=(
            "Install (Debian docker.io, docker-compose, debootstrap) and run the project's own "
            "Docker engine, state under MLOPS_ENGINE_DIR (default /var/lib/mlops-engine)."
        ),
    )
    p.add_argument(
        "action",
        choices=ACTIONS,
        help=(
            "up: install when missing and start; down: stop by pid and remove what it added; "
            'status; env: the variables to reach it (eval "$(./run.sh engine env)"); '
            "images: build the air-gapped base and stand-in images"
        ),
    )
    p.add_argument(
        "--rebuild", action="store_true", help="images: rebuild every image, even those present"
    )
    return p


def up() -> int:
    layout = engine.default_layout()
    state = engine.status(layout)
    if state.state != "stopped":
        print(_describe(state) + ": nothing to do")
        return 0
    started = time.monotonic()
    installed = engine.ensure_installed()
    if installed:
        print(f"installed {' '.join(installed)} in {time.monotonic() - started:.1f} s")
    print(engine.start(layout))
    print('use it: eval "$(./run.sh engine env)"  (run.sh\'s docker runtime finds it itself)')
    return 0


def down() -> int:
    for line in engine.stop(engine.default_layout()):
        print(line)
    return 0


def _describe(state: engine.EngineStatus) -> str:
    if state.state == "running":
        return f"the project's engine runs: pid {state.pid}, {state.host}, dockerd {state.version}"
    if state.state == "external":
        return f"a container engine that is not the project's answers at {state.host}"
    extra = f" ({state.detail})" if state.detail else ""
    return f"the project's engine is stopped{extra}"


def status() -> int:
    state = engine.status(engine.default_layout())
    print(_describe(state))
    return 0 if state.state != "stopped" else 1


def print_env() -> int:
    layout = engine.default_layout()
    if not engine.ping(layout.socket):
        print("# the project's engine is not running: ./run.sh engine up")
        return 1
    for key, value in engine.env(layout).items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def images(rebuild: bool) -> int:
    return airgap.main(["--rebuild"] if rebuild else [])


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handlers: dict[str, Callable[[], int]] = {
        "up": up,
        "down": down,
        "status": status,
        "env": print_env,
        "images": lambda: images(args.rebuild),
    }
    try:
        return handlers[args.action]()
    except engine.EngineError as exc:
        print(f"error: {exc}")
        return 1
