"""What every component's command line shares: argument validators, settings errors, the HTTP
server start.

Exit codes of every component CLI: 0 success, 1 the step failed (the message names why), 2 bad
input (arguments or settings).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from mlops_common.events.codec import describe

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
