"""``stream-emitting``: the driver statistics event producer.

    stream-emitting produce [--rate 10] [--scenario normal] [--max-events N] [--duration S] ...
    stream-emitting emit driver_id=1001 conv_rate=0.9 ... [--raw]

Options default to the settings (``stream_emitting.settings``: environment, then the env file).
Exit codes: 0 success, 1 the step failed (for example the broker is unreachable for ``emit``),
2 bad arguments or settings. ``produce`` stops cleanly on SIGTERM/SIGINT and prints a JSON
summary of what it wrote.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mlops_common.cli import (
    UsageError,
    add_command,
    log_to_stderr,
    positive_float,
    positive_int,
    run_command,
    stop_on_signals,
    validation_message,
)

if TYPE_CHECKING:
    from stream_emitting.settings import ProducerSettings

PROG = "stream-emitting"


def _driver_range(value: str) -> tuple[int, int]:
    low, sep, high = value.partition("-")
    try:
        first = int(low)
        last = int(high) if sep else first
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid driver range {value!r}: expected FIRST-LAST, e.g. 1001-2000"
        ) from None
    return first, last


def build_parser() -> argparse.ArgumentParser:
    from example_project.world.config import Scenario

    parser = argparse.ArgumentParser(prog=PROG, description="Driver statistics event producer.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    produce = add_command(
        commands,
        "produce",
        _cmd_produce,
        summary="emit driver statistics events continuously",
        description=(
            "Emit DriverStatsEvent v1 to the Redis stream at a steady rate, following a "
            "scenario; reconnects with backoff when the broker goes away."
        ),
    )
    produce.add_argument(
        "--redis-url", dest="stream_redis_url", default=None, help="broker URL (default: settings)"
    )
    produce.add_argument("--stream", default=None, help="stream name (default: mlops:driver_stats)")
    produce.add_argument("--rate", type=positive_float, default=None, help="events per second")
    produce.add_argument("--scenario", choices=[s.value for s in Scenario], default=None)
    produce.add_argument("--seed", type=int, default=None, help="seed of the driver world")
    produce.add_argument(
        "--drivers", type=_driver_range, default=None, help="driver ids FIRST-LAST (>= 1001)"
    )
    produce.add_argument(
        "--drift-start", default=None, help="covariate_drift: UTC start (default: now)"
    )
    produce.add_argument("--dirty-rate", type=float, default=None, help="dirty: malformed share")
    produce.add_argument(
        "--duplicate-rate", type=float, default=None, help="dirty: share sent twice"
    )
    produce.add_argument("--maxlen", type=int, default=None, help="approximate stream length cap")
    produce.add_argument("--metrics-port", type=int, default=None, help="/metrics port (0: off)")
    produce.add_argument("--producer-id", default=None, help="event id prefix (default: random)")
    produce.add_argument(
        "--max-events", type=positive_int, default=None, help="stop after this many entries"
    )
    produce.add_argument(
        "--duration", type=positive_float, default=None, help="stop after this many seconds"
    )

    emit = add_command(
        commands,
        "emit",
        _cmd_emit,
        summary="emit one event given as FIELD=VALUE pairs",
        description=(
            "Emit one event. event_id, schema_version, event_timestamp and produced_at default "
            "to a fresh id, 1 and now. Without --raw the event is validated first (exit 2 when "
            "malformed); with --raw it is sent as given, e.g. to try the dead-letter stream."
        ),
    )
    emit.add_argument("fields", nargs="+", metavar="FIELD=VALUE")
    emit.add_argument("--raw", action="store_true", help="send without validating")
    emit.add_argument("--redis-url", default=None, help="broker URL (default: settings)")
    emit.add_argument("--stream", default=None, help="stream name (default: mlops:driver_stats)")
    return parser


def _settings_error(exc: ValidationError) -> UsageError:
    return UsageError("invalid settings: " + validation_message(exc))


#: the ``produce`` options that override a setting of the same name
_PRODUCE_SETTINGS = (
    "stream_redis_url",
    "stream",
    "rate",
    "scenario",
    "seed",
    "drift_start",
    "dirty_rate",
    "duplicate_rate",
    "maxlen",
    "metrics_port",
    "producer_id",
)


def _producer_settings(args: argparse.Namespace) -> ProducerSettings:
    from stream_emitting.settings import ProducerSettings

    overrides: dict[str, Any] = {name: getattr(args, name) for name in _PRODUCE_SETTINGS}
    if args.drivers is not None:
        overrides["driver_id_min"], overrides["driver_id_max"] = args.drivers
    try:
        return ProducerSettings.load(**overrides)
    except ValidationError as exc:
        raise _settings_error(exc) from None


def _cmd_produce(args: argparse.Namespace) -> int:
    from mlops_common.prometheus import metrics_server
    from stream_emitting.producer import Producer

    settings = _producer_settings(args)
    stop = threading.Event()
    stop_on_signals(stop, logging.getLogger(PROG))
    producer = Producer(settings, stop=stop)
    try:
        with metrics_server(
            producer.registry, port=settings.metrics_port, host=settings.mlops_bind_host
        ):
            stats = producer.run(max_events=args.max_events, duration=args.duration)
    finally:
        producer.client.close()
    print(
        json.dumps(
            {"stream": settings.stream, "producer_id": producer.producer_id, **stats.as_dict()}
        )
    )
    return 0


def _cmd_emit(args: argparse.Namespace) -> int:
    from mlops_common.events.driver_stats import (
        SCHEMA_VERSION,
        MalformedEvent,
        StreamBrokerSettings,
        decode,
        format_timestamp,
    )
    from mlops_common.redis import connect

    fields: dict[str, str] = {}
    for pair in args.fields:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"expected FIELD=VALUE, got {pair!r}")
        fields[name] = value
    now = format_timestamp(datetime.now(UTC))
    fields.setdefault("schema_version", str(SCHEMA_VERSION))
    fields.setdefault("event_id", f"manual:{uuid.uuid4().hex}")
    fields.setdefault("event_timestamp", now)
    fields.setdefault("produced_at", now)
    if not args.raw:
        try:
            fields = decode(fields).encode()
        except MalformedEvent as exc:
            raise UsageError(f"malformed event: {exc.reason}") from None
    try:
        settings = StreamBrokerSettings.load(stream_redis_url=args.redis_url, stream=args.stream)
    except ValidationError as exc:
        raise _settings_error(exc) from None
    client = connect(settings.broker_url)
    try:
        entry_id = client.xadd(settings.stream, fields)  # type: ignore[arg-type]
    finally:
        client.close()
    entry = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    print(json.dumps({"stream": settings.stream, "entry_id": entry, "fields": fields}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    log_to_stderr()
    return run_command(build_parser(), argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
