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
import signal
import sys
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

if TYPE_CHECKING:
    from stream_emitting.settings import ProducerSettings

PROG = "stream-emitting"


class UsageError(Exception):
    """Bad input detected after argument parsing (exit code 2)."""


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {number})")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be positive (got {value})")
    return number


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

    produce = commands.add_parser(
        "produce",
        help="emit driver statistics events continuously",
        description=(
            "Emit DriverStatsEvent v1 to the Redis stream at a steady rate, following a "
            "scenario; reconnects with backoff when the broker goes away."
        ),
    )
    produce.add_argument("--redis-url", default=None, help="broker URL (default: settings)")
    produce.add_argument("--stream", default=None, help="stream name (default: mlops:driver_stats)")
    produce.add_argument("--rate", type=_positive_float, default=None, help="events per second")
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
        "--max-events", type=_positive_int, default=None, help="stop after this many entries"
    )
    produce.add_argument(
        "--duration", type=_positive_float, default=None, help="stop after this many seconds"
    )
    produce.set_defaults(handler=_cmd_produce)

    emit = commands.add_parser(
        "emit",
        help="emit one event given as FIELD=VALUE pairs",
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
    emit.set_defaults(handler=_cmd_emit)
    return parser


def _settings_error(exc: ValidationError) -> UsageError:
    messages = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"])
        messages.append(f"{loc}: {error['msg']}" if loc else str(error["msg"]))
    return UsageError("invalid settings: " + "; ".join(messages))


def _producer_settings(args: argparse.Namespace) -> ProducerSettings:
    from stream_emitting.settings import ProducerSettings

    overrides: dict[str, Any] = {
        "stream_redis_url": args.redis_url,
        "stream": args.stream,
        "rate": args.rate,
        "scenario": args.scenario,
        "seed": args.seed,
        "drift_start": args.drift_start,
        "dirty_rate": args.dirty_rate,
        "duplicate_rate": args.duplicate_rate,
        "maxlen": args.maxlen,
        "metrics_port": args.metrics_port,
        "producer_id": args.producer_id,
    }
    if args.drivers is not None:
        overrides["driver_id_min"], overrides["driver_id_max"] = args.drivers
    try:
        return ProducerSettings.load(**overrides)
    except ValidationError as exc:
        raise _settings_error(exc) from None


def _install_stop_handlers(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        logging.getLogger(PROG).info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _cmd_produce(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    from stream_emitting.producer import Producer

    settings = _producer_settings(args)
    stop = threading.Event()
    _install_stop_handlers(stop)
    producer = Producer(settings, stop=stop)
    server = None
    if settings.metrics_port:
        server, _ = start_http_server(
            settings.metrics_port, addr=settings.mlops_bind_host, registry=producer.registry
        )
        logging.getLogger(PROG).info(
            "metrics on http://%s:%d/metrics", settings.mlops_bind_host, settings.metrics_port
        )
    try:
        stats = producer.run(max_events=args.max_events, duration=args.duration)
    finally:
        if server is not None:
            server.shutdown()
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
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except UsageError as exc:
        parser.exit(2, f"{PROG} {args.command}: error: {exc}\n")
    except Exception as exc:  # the step failed: one line naming the problem, non-zero exit
        detail = (str(exc).strip().splitlines() or [""])[0]
        print(f"{PROG} {args.command}: failed: {type(exc).__name__}: {detail}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
