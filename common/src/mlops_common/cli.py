"""What every component's command line shares: argument validators, settings errors, running a
sub-command with the exit-code contract (``run_command``), stopping on SIGTERM/SIGINT, the HTTP
service's ``serve`` and ``check`` commands (``add_service_commands``, ``serve_app``).

Exit codes of every component CLI: 0 success, 1 the step failed (the message names why), 2 bad
input (arguments or settings).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from mlops_common.events.codec import describe

if TYPE_CHECKING:
    from mlops_common.settings import PlatformSettings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_S = TypeVar("_S")


class UsageError(Exception):
    """Bad input detected after argument parsing (exit code 2)."""


def _number(value: str, kind: Callable[[str], Any], what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid {what} {value!r}") from None


def positive_int(value: str) -> int:
    number: int = _number(value, int, "integer")
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {number})")
    return number


def non_negative_int(value: str) -> int:
    number: int = _number(value, int, "integer")
    if number < 0:
        raise argparse.ArgumentTypeError(f"must not be negative (got {number})")
    return number


def positive_float(value: str) -> float:
    number: float = _number(value, float, "number")
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be positive (got {value})")
    return number


def utc_time(value: str) -> datetime:
    """ISO 8601 date or date-time; naive values are UTC (``2024-01-01``, ``2024-01-01T05:00Z``)."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {value!r}: expected ISO 8601, e.g. 2024-01-01 or 2024-01-01T05:00Z"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def json_object(value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"invalid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return parsed


def load_settings(prog: str, load: Callable[..., _S], **overrides: Any) -> _S:
    """``load(**overrides)``, or exit 1 with one line naming every invalid setting."""
    try:
        return load(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        print(f"{prog}: invalid settings: {describe(exc)}", file=sys.stderr)
        raise SystemExit(EXIT_FAILED) from None


def validation_message(exc: ValidationError, *, tidy: bool = False) -> str:
    """Every error of ``exc`` on one line: ``field: message; …`` (the bare message where no field
    is named). ``tidy`` drops pydantic's ``Value error, `` prefix and the field name where the
    message starts with it already."""
    messages = []
    for error in exc.errors():
        message = str(error["msg"])
        if tidy:
            message = message.removeprefix("Value error, ")
        loc = ".".join(str(part) for part in error["loc"])
        named = loc and not (tidy and message.startswith(loc))
        messages.append(f"{loc}: {message}" if named else message)
    return "; ".join(messages)


def stop_on_signals(stop: threading.Event, log: logging.Logger, doing: str = "stopping") -> None:
    """Set ``stop`` on SIGTERM or SIGINT, logging ``received <SIGNAL>: <doing>``."""

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s: %s", signal.Signals(signum).name, doing)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def log_to_stderr() -> None:
    """Plain log lines on stderr at INFO (the stream commands' progress)."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _invalid_setting(exc: ValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
    loc = ".".join(str(p) for p in first["loc"])
    return f"invalid setting {loc}: {first['msg']}"


def add_command(
    commands: Any,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    *,
    summary: str,
    description: str | None = None,
    parents: Sequence[argparse.ArgumentParser] = (),
    **defaults: Any,
) -> argparse.ArgumentParser:
    """Add the sub-command ``name`` to ``commands`` (``add_subparsers(dest="command")``): its
    ``handler`` runs it under ``run_command``; ``summary`` is its line in ``--help``,
    ``defaults`` more values of its ``args``."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, parents=list(parents), help=summary, description=description
    )
    parser.set_defaults(handler=handler, **defaults)
    return parser


def run_command(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    prog: str,
    *,
    usage_errors: tuple[type[Exception], ...] = (UsageError,),
    reported_errors: tuple[type[Exception], ...] = (),
) -> int:
    """Parse ``argv`` and run the sub-command's ``handler`` (``args.command`` names it), with the
    exit codes of every component CLI: ``usage_errors`` exit 2 (``<prog> <command>: error: …``),
    so does a ``ValidationError`` of the settings (``invalid setting <field>: …``);
    ``reported_errors`` return 1 with their own message (``failed: …``), any other exception 1
    with its type and first line. Every failure is one line on stderr."""
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except usage_errors as exc:
        parser.exit(EXIT_USAGE, f"{prog} {args.command}: error: {exc}\n")
    except reported_errors as exc:
        print(f"{prog} {args.command}: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ValidationError as exc:  # settings from the environment / env file
        print(f"{prog} {args.command}: error: {_invalid_setting(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # the step failed: one line naming the problem
        detail = (str(exc).strip().splitlines() or [""])[0]
        print(f"{prog} {args.command}: failed: {type(exc).__name__}: {detail}", file=sys.stderr)
        return EXIT_FAILED
    return result


def settings_json(
    settings: BaseModel,
    *secrets: str,
    redact: Callable[[str], str] | None = None,
    derived: dict[str, Any] | None = None,
) -> str:
    """The settings as indented JSON for a ``check`` command: each of ``secrets`` shown as
    ``***`` (empty when unset), every other text through ``redact`` when given (e.g.
    ``mlops_common.redis.redact``: no password of a URL printed), ``derived`` values added."""
    shown = settings.model_dump(mode="json")
    if redact is not None:
        shown = {k: redact(v) if isinstance(v, str) else v for k, v in shown.items()}
    for name in secrets:
        shown[name] = "***" if getattr(settings, name).get_secret_value() else ""
    shown.update(derived or {})
    return json.dumps(shown, indent=2, sort_keys=True)


def run_func(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and return what the sub-command's ``func`` returns (its own exit code).

    Sets ``SPT_NOENV`` first: importing Feast imports gunicorn, whose setproctitle call would
    overwrite ``/proc/<pid>/environ``, and the platform finds its processes by their environment.
    """
    os.environ.setdefault("SPT_NOENV", "1")
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def serve_http(app_factory: Callable[[], Any], *, host: str, port: int, log_level: str) -> None:
    """Configure JSON logging (``mlops_common.logs``), build the ASGI app, run it on uvicorn with
    one worker until SIGTERM."""
    import uvicorn

    from mlops_common.logs import UVICORN_LOG_CONFIG, configure_logging

    configure_logging(log_level)
    uvicorn.run(
        app_factory(),
        host=host,
        port=port,
        workers=1,
        access_log=False,
        log_config=UVICORN_LOG_CONFIG,
        log_level=log_level.lower(),
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


def add_service_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    what: str,
    port_variable: str,
    serve: Callable[[argparse.Namespace], int],
    check: Callable[[argparse.Namespace], int],
) -> None:
    """The two sub-commands of a component's HTTP service (``func`` style, see ``run_func``):
    ``serve [--host H] [--port P]`` (``what`` in its help; the defaults ``MLOPS_BIND_HOST`` and
    ``port_variable``) and ``check`` (print the effective settings and check them)."""
    p = commands.add_parser("serve", help=f"run the {what}")
    p.add_argument("--host", default=None, help="bind address (default MLOPS_BIND_HOST)")
    p.add_argument("--port", type=int, default=None, help=f"port (default {port_variable})")
    p.set_defaults(func=serve)
    p = commands.add_parser("check", help="print the effective settings and check them")
    p.set_defaults(func=check)


def report_problems(prog: str, problems: Sequence[str]) -> int:
    """Each of ``problems`` as ``<prog>: <problem>`` on stderr; the exit code: 1 when there is
    any, else 0."""
    for problem in problems:
        print(f"{prog}: {problem}", file=sys.stderr)
    return EXIT_FAILED if problems else EXIT_OK


def serve_app(
    prog: str,
    factory: str,
    settings: PlatformSettings,
    *,
    problems: Sequence[str],
    port: int,
    log_level: str,
) -> int:
    """A ``serve`` command: exit 1 naming ``problems`` when there are any; else import
    ``factory`` (``"package.module:function"``, called with ``settings``) and serve its app on
    ``MLOPS_BIND_HOST:port`` (``serve_http``) until SIGTERM, exit 0."""
    if problems:
        return report_problems(prog, problems)
    module, _, name = factory.partition(":")
    create_app = getattr(importlib.import_module(module), name)
    serve_http(
        lambda: create_app(settings),
        host=settings.mlops_bind_host,
        port=port,
        log_level=log_level,
    )
    return EXIT_OK
