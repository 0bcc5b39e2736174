"""``data-pipeline stream-consume``: run the stream consumer until SIGTERM (or a bound).

Hooked into the data pipeline's CLI with ``add_parser(commands)``; ``python -m
data_pipeline.stream_consumer`` runs the same command on its own.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from pydantic import ValidationError

from data_pipeline.cli import UsageError

COMMAND = "stream-consume"


class StreamUsageError(UsageError):
    """Bad settings or options (exit code 2 from ``data-pipeline``'s main as well)."""


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


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--redis-url", default=None, help="broker URL (default: settings)")
    parser.add_argument("--stream", default=None, help="stream (default: mlops:driver_stats)")
    parser.add_argument("--group", default=None, help="consumer group (default: data-pipeline)")
    parser.add_argument("--consumer-name", default=None, help="name in the group (stable!)")
    parser.add_argument("--batch-size", type=_positive_int, default=None)
    parser.add_argument("--metrics-port", type=int, default=None, help="/metrics port (0: off)")
    parser.add_argument(
        "--no-offline", action="store_true", help="online only: do not write the offline store"
    )
    parser.add_argument(
        "--max-entries", type=_positive_int, default=None, help="stop after this many entries"
    )
    parser.add_argument(
        "--duration", type=_positive_float, default=None, help="stop after this many seconds"
    )
    parser.add_argument(
        "--idle-exit",
        type=_positive_float,
        default=None,
        help="stop after this many seconds without a new entry",
    )
    parser.set_defaults(handler=run_command)
    return parser


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``stream-consume`` to the data pipeline's sub-commands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        COMMAND,
        help="consume the driver stats stream into the feature store",
        description=(
            "Read DriverStatsEvent v1 from the Redis stream with a consumer group, push valid "
            "events to the Feast online store and (batched) to the offline store, dead-letter "
            "malformed ones to <stream>:dead; exactly-once effect across restarts. Stops on "
            "SIGTERM."
        ),
    )
    return configure(parser)


def _settings(args: argparse.Namespace) -> Any:
    from data_pipeline.stream_consumer.settings import StreamConsumerSettings

    overrides: dict[str, Any] = {
        "stream_redis_url": args.redis_url,
        "stream": args.stream,
        "group": args.group,
        "consumer_name": args.consumer_name,
        "batch_size": args.batch_size,
        "metrics_port": args.metrics_port,
    }
    if args.no_offline:
        overrides["offline"] = False
    try:
        return StreamConsumerSettings.load(**overrides)
    except ValidationError as exc:
        messages = []
        for error in exc.errors():
            loc = ".".join(str(p) for p in error["loc"])
            messages.append(f"{loc}: {error['msg']}" if loc else str(error["msg"]))
        raise StreamUsageError("invalid settings: " + "; ".join(messages)) from None


def build_sinks(offline: bool) -> tuple[Any, Any]:
    """The Feast online sink and the offline sink of the data pipeline's feature store."""
    from data_pipeline.stream_consumer.sinks import feature_store_sinks

    online, offline_sink = feature_store_sinks(offline=offline)
    return online, offline_sink


def run_command(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    from data_pipeline.stream_consumer.consumer import StreamConsumer
    from data_pipeline.stream_consumer.metrics import ConsumerMetrics

    _logging()
    log = logging.getLogger("data_pipeline.stream_consumer")
    settings = _settings(args)
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info(
            "received %s: finishing the current batch and stopping", signal.Signals(signum).name
        )
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    metrics = ConsumerMetrics()
    server = None
    if settings.metrics_port:
        server, _ = start_http_server(
            settings.metrics_port, addr=settings.mlops_bind_host, registry=metrics.registry
        )
        log.info("metrics on http://%s:%d/metrics", settings.mlops_bind_host, settings.metrics_port)
    try:
        online, offline = build_sinks(settings.offline)
        consumer = StreamConsumer(settings, online, offline, stop=stop, metrics=metrics)
        stats = consumer.run(
            max_entries=args.max_entries, duration=args.duration, idle_exit_s=args.idle_exit
        )
        totals = consumer.counters()
        consumer.client.close()
    finally:
        if server is not None:
            server.shutdown()
    print(
        json.dumps(
            {
                "stream": settings.stream,
                "group": settings.group,
                "consumer": settings.consumer_name,
                **stats.as_dict(),
                "totals": totals,
            }
        )
    )
    return 0


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m data_pipeline.stream_consumer [options]``."""
    parser = configure(
        argparse.ArgumentParser(
            prog=f"data-pipeline {COMMAND}", description="Consume the driver stats stream."
        )
    )
    args = parser.parse_args(argv)
    try:
        return run_command(args)
    except StreamUsageError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except Exception as exc:
        detail = (str(exc).strip().splitlines() or [""])[0]
        print(f"{parser.prog}: failed: {type(exc).__name__}: {detail}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
