"""``data-pipeline stream-consume``: run the stream consumer until SIGTERM (or a bound).

Hooked into the data pipeline's CLI with ``add_parser(commands)``; ``python -m
data_pipeline.stream_consumer`` runs the same command on its own.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from data_pipeline.cli import PROG, UsageError
from mlops_common import cli

COMMAND = "stream-consume"


class StreamUsageError(UsageError):
    """Bad settings or options (exit code 2 from ``data-pipeline``'s main as well)."""


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--redis-url", dest="stream_redis_url", default=None, help="broker URL (default: settings)"
    )
    parser.add_argument("--stream", default=None, help="stream (default: mlops:driver_stats)")
    parser.add_argument("--group", default=None, help="consumer group (default: data-pipeline)")
    parser.add_argument("--consumer-name", default=None, help="name in the group (stable!)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=None)
    parser.add_argument("--metrics-port", type=int, default=None, help="/metrics port (0: off)")
    parser.add_argument(
        "--no-offline", action="store_true", help="online only: do not write the offline store"
    )
    parser.add_argument(
        "--max-entries", type=cli.positive_int, default=None, help="stop after this many entries"
    )
    parser.add_argument(
        "--duration", type=cli.positive_float, default=None, help="stop after this many seconds"
    )
    parser.add_argument(
        "--idle-exit",
        type=cli.positive_float,
        default=None,
        help="stop after this many seconds without a new entry",
    )
    parser.set_defaults(handler=consume, command=COMMAND)
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

    names = ("stream_redis_url", "stream", "group", "consumer_name", "batch_size", "metrics_port")
    overrides: dict[str, Any] = {name: getattr(args, name) for name in names}
    if args.no_offline:
        overrides["offline"] = False
    try:
        return StreamConsumerSettings.load(**overrides)
    except ValidationError as exc:
        raise StreamUsageError("invalid settings: " + cli.validation_message(exc)) from None


def build_sinks(offline: bool) -> tuple[Any, Any]:
    """The Feast online sink and the offline sink of the data pipeline's feature store."""
    from data_pipeline.stream_consumer.sinks import feature_store_sinks

    online, offline_sink = feature_store_sinks(offline=offline)
    return online, offline_sink


def consume(args: argparse.Namespace) -> int:
    from data_pipeline.stream_consumer.consumer import StreamConsumer
    from data_pipeline.stream_consumer.metrics import ConsumerMetrics
    from mlops_common.prometheus import metrics_server

    cli.log_to_stderr()
    log = logging.getLogger("data_pipeline.stream_consumer")
    settings = _settings(args)
    stop = threading.Event()
    cli.stop_on_signals(stop, log, "finishing the current batch and stopping")
    metrics = ConsumerMetrics()
    with metrics_server(
        metrics.registry, port=settings.metrics_port, host=settings.mlops_bind_host
    ):
        online, offline = build_sinks(settings.offline)
        consumer = StreamConsumer(settings, online, offline, stop=stop, metrics=metrics)
        stats = consumer.run(
            max_entries=args.max_entries, duration=args.duration, idle_exit_s=args.idle_exit
        )
        totals = consumer.counters()
        consumer.client.close()
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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m data_pipeline.stream_consumer [options]``."""
    parser = configure(
        argparse.ArgumentParser(
            prog=f"{PROG} {COMMAND}", description="Consume the driver stats stream."
        )
    )
    return cli.run_command(parser, argv, PROG, usage_errors=(StreamUsageError,))


if __name__ == "__main__":
    sys.exit(main())
