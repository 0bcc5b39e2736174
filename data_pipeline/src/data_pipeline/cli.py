"""``data-pipeline``: the data pipeline's steps as sub-commands.

Batch pipeline (``--start``/``--end``: UTC, whole hours, ``end`` exclusive)::

    data-pipeline ingest|validate|transform|publish|materialize --start T --end T
    data-pipeline apply                      # feast apply (no interval)
    data-pipeline run --start T --end T      # all six steps in order

Example data: ``data-pipeline generate|oracle``; ``data-pipeline emit --hour T`` (one hour of the
configured example world, what the ``example_source`` DAG runs); ``data-pipeline dispatch`` (live
bookings against the prediction API, outcomes as feedback: the launcher's ``traffic`` service).

Exit codes: 0 success, 1 the step failed (validation rejected the batch, the source is
unreachable, an earlier step has not run, …), 2 bad input (arguments, an interval not on whole
hours, …). A failure prints one line naming the problem.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

PROG = "data-pipeline"


class UsageError(Exception):
    """Bad input detected after argument parsing (exit code 2)."""


def parse_time(value: str) -> datetime:
    """ISO 8601 date or date-time; naive values are UTC (``2024-01-01``, ``2024-01-01T05:00Z``)."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {value!r}: expected ISO 8601, e.g. 2024-01-01 or 2024-01-01T05:00Z"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {number})")
    return number


def _non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must not be negative (got {number})")
    return number


def _rate(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid rate {value!r}") from None
    if not 0.0 <= rate <= 0.5:
        raise argparse.ArgumentTypeError(f"rate must be between 0 and 0.5 (got {value})")
    return rate


def _world_options() -> argparse.ArgumentParser:
    from data_pipeline.example_source.config import Scenario

    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("example world")
    group.add_argument("--start", type=parse_time, required=True, help="first hour (UTC)")
    group.add_argument("--end", type=parse_time, required=True, help="end hour, exclusive (UTC)")
    group.add_argument(
        "--scenario",
        choices=[s.value for s in Scenario],
        default=None,
        help="scenario (default: MLOPS_EXAMPLE_SCENARIO, normal)",
    )
    group.add_argument(
        "--seed",
        type=_non_negative_int,
        default=None,
        help="seed (default: MLOPS_EXAMPLE_SEED, 42)",
    )
    group.add_argument(
        "--drivers",
        type=_positive_int,
        default=None,
        help="number of drivers (default: MLOPS_EXAMPLE_DRIVERS, 1000)",
    )
    group.add_argument(
        "--bookings-per-hour",
        type=_non_negative_int,
        default=None,
        help="(default: MLOPS_EXAMPLE_BOOKINGS_PER_HOUR, 30)",
    )
    group.add_argument(
        "--candidates", type=_positive_int, default=5, help="candidates per booking (default: 5)"
    )
    group.add_argument(
        "--drift-start",
        type=parse_time,
        default=None,
        help="absolute UTC hour the drift scenarios start at (required for them; default: "
        "MLOPS_EXAMPLE_DRIFT_START)",
    )
    group.add_argument("--null-rate", type=_rate, default=None, help="dirty: null values")
    group.add_argument("--out-of-range-rate", type=_rate, default=None, help="dirty: bad values")
    group.add_argument("--duplicate-rate", type=_rate, default=None, help="dirty: duplicates")
    group.add_argument("--late-rate", type=_rate, default=None, help="dirty: late rows")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="The data pipeline's steps as sub-commands."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    world = _world_options()

    generate = commands.add_parser(
        "generate",
        parents=[world],
        help="generate example data and write it to the configured source",
        description=(
            "Generate the example tables for [start, end) and write them to the source that "
            "MLOPS_DATABASE_URL / MLOPS_DATA_DIR point at. Re-running a slice is idempotent."
        ),
    )
    generate.add_argument(
        "--chunk-hours",
        type=_positive_int,
        default=24,
        help="generate and write this many hours at a time (default: 24)",
    )
    generate.add_argument(
        "--manifest", type=Path, default=None, help="write the dirty-row manifest to this CSV"
    )
    generate.set_defaults(handler=_cmd_generate)

    oracle = commands.add_parser(
        "oracle",
        parents=[world],
        help="print the oracle's metrics (JSON)",
        description="Generate [start, end) in memory and print the true model's metrics as JSON.",
    )
    oracle.set_defaults(handler=_cmd_oracle)

    interval = argparse.ArgumentParser(add_help=False)
    group = interval.add_argument_group("interval")
    group.add_argument("--start", required=True, help="first hour, UTC (e.g. 2024-01-01T00:00Z)")
    group.add_argument("--end", required=True, help="end hour, exclusive, UTC")
    step_help = {
        "ingest": "read the interval's delivered rows from the source and stage them",
        "validate": "check the staged rows (pandera rules); quarantine failing rows with a report",
        "transform": "valid rows to offline feature rows (re-deliveries: latest created wins)",
        "publish": "write the interval's feature rows to the offline store (partitioned parquet)",
        "materialize": "load the interval's latest feature values into the online store",
    }
    for name, text in step_help.items():
        step = commands.add_parser(name, parents=[interval], help=text, description=text + ".")
        step.set_defaults(handler=_cmd_step, step=name)
    apply_cmd = commands.add_parser(
        "apply",
        help="feast apply of data_pipeline/feature_repo with the configured stores (idempotent)",
        description="Register the feature repository's definitions (feast apply semantics).",
    )
    apply_cmd.set_defaults(handler=_cmd_step, step="apply", start=None, end=None)
    run = commands.add_parser(
        "run",
        parents=[interval],
        help="all steps in order: ingest validate transform publish apply materialize",
        description="Run every step of the batch pipeline on the interval; stop at a failure.",
    )
    run.set_defaults(handler=_cmd_run)

    emit = commands.add_parser(
        "emit",
        help="write one hour of the MLOPS_EXAMPLE_* world to the source (example_source DAG)",
        description=(
            "Write the driver statistics delivered in [HOUR, HOUR+1h) and the bookings of "
            "[HOUR-1h, HOUR) of the example world (MLOPS_EXAMPLE_SEED, _DRIVERS, _SCENARIO, "
            "_BOOKINGS_PER_HOUR, _DRIFT_START) to the configured source. Idempotent."
        ),
    )
    emit.add_argument("--hour", type=parse_time, required=True, help="a whole UTC hour")
    emit.set_defaults(handler=_cmd_emit)

    dispatch = commands.add_parser(
        "dispatch",
        help="the example company's live bookings: rankings from the API, outcomes as feedback",
        description=(
            "Send bookings to the prediction API at MLOPS_DISPATCH_RATE a second, assign a "
            "driver, draw the trip's outcome from the example world's true model and report it "
            "as feedback after a label delay (see data_pipeline.example_source.dispatcher). "
            "Runs until SIGTERM or --max-bookings; /metrics on DISPATCH_METRICS_PORT (0: off)."
        ),
    )
    dispatch.add_argument("--max-bookings", type=_positive_int, default=None)
    dispatch.set_defaults(handler=_cmd_dispatch)
    from data_pipeline.stream_consumer.cli import add_parser as add_stream_consume

    add_stream_consume(commands)
    return parser


def _cmd_dispatch(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from prometheus_client import start_http_server

    from data_pipeline.example_source.dispatcher import (
        Dispatcher,
        DispatchMetrics,
        online_feature_reader,
        serving_client,
    )
    from data_pipeline.settings import DataPipelineSettings

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    settings = DataPipelineSettings()
    if not settings.serving_api_key.get_secret_value():
        raise UsageError("SERVING_API_KEY is empty: the prediction API needs its key")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    metrics = DispatchMetrics()
    server = None
    if settings.dispatch_metrics_port:
        server, _ = start_http_server(
            settings.dispatch_metrics_port, addr=settings.mlops_bind_host, registry=metrics.registry
        )
    print(
        f"dispatching {settings.dispatch_rate:g} bookings/s to "
        f"{settings.dispatch_serving_base_url} (scenario {settings.example_scenario}, explore "
        f"{settings.dispatch_explore:g}); metrics on port {settings.dispatch_metrics_port}",
        flush=True,
    )
    try:
        with serving_client(settings) as client:
            dispatcher = Dispatcher(settings, client, online_feature_reader(settings), metrics)
            done = dispatcher.run(stop, args.max_bookings)
    finally:
        if server is not None:
            server.shutdown()
    print(f"dispatched {done} bookings", flush=True)
    return 0


def _cmd_emit(args: argparse.Namespace) -> int:
    from data_pipeline.example_source.config import to_utc_hour
    from data_pipeline.example_source.emit import emit_hour, world_config
    from data_pipeline.settings import DataPipelineSettings

    settings = DataPipelineSettings()
    try:
        hour = to_utc_hour(args.hour, "hour")
        world_config(settings, hour, hour + timedelta(hours=1))
    except ValidationError as exc:
        raise UsageError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    summary = emit_hour(settings, hour)
    print(f"emit: {summary['rows']} into {summary['source']} in {summary['seconds']:.2f} s")
    print(json.dumps(summary, indent=2))
    return 0


def _headline(summary: dict[str, Any]) -> str:
    step = summary.get("step", "?")
    seconds = summary.get("seconds")
    took = f" in {seconds:.2f} s" if isinstance(seconds, int | float) else ""
    if step == "validate":
        return (
            f"validate: {summary['status']}: {summary['rows']} rows, "
            f"{summary['failed_rows']} quarantined ({summary['failure_rate']:.2%}, limit "
            f"{summary['max_failure_rate']:.2%}){took}"
        )
    if step == "materialize":
        rate = summary.get("rows_per_second")
        return (
            f"materialize: {summary['rows']} rows into {summary['online_store']} in "
            f"{summary['materialize_seconds']:.2f} s ({rate} rows/s)"
        )
    if step == "apply":
        return (
            f"apply: project {summary['project']}, registry {summary['registry']}, "
            f"online store {summary['online_store']}{took}"
        )
    return f"{step}: {summary.get('rows', 0)} rows{took}"


def _print_summary(summary: dict[str, Any]) -> None:
    output = summary.pop("output", None) if summary.get("step") == "apply" else None
    if output and output.strip():
        print(output.rstrip())
    print(_headline(summary))
    print(json.dumps(summary, indent=2, default=str))


def _cmd_step(args: argparse.Namespace) -> int:
    from data_pipeline.batch.steps import run_step

    _print_summary(run_step(args.step, args.start, args.end))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from data_pipeline.batch.steps import STEPS, run_step
    from data_pipeline.settings import DataPipelineSettings

    settings = DataPipelineSettings()
    for name in STEPS:
        _print_summary(run_step(name, args.start, args.end, settings))
    return 0


def _config(args: argparse.Namespace) -> Any:
    """The world of the command line; options not given come from the ``MLOPS_EXAMPLE_*``
    settings, so that ``generate`` writes the same world as ``emit`` and the stream."""
    from data_pipeline.example_source.config import DirtyRates, ExampleSourceConfig
    from data_pipeline.settings import DataPipelineSettings

    world = DataPipelineSettings()

    def given(value: Any, default: Any) -> Any:
        return default if value is None else value

    rates = {
        name: getattr(args, attr)
        for name, attr in (
            ("null", "null_rate"),
            ("out_of_range", "out_of_range_rate"),
            ("duplicate", "duplicate_rate"),
            ("late", "late_rate"),
        )
        if getattr(args, attr) is not None
    }
    try:
        return ExampleSourceConfig(
            seed=given(args.seed, world.example_seed),
            n_drivers=given(args.drivers, world.example_drivers),
            start=args.start,
            end=args.end,
            bookings_per_hour=given(args.bookings_per_hour, world.example_bookings_per_hour),
            candidates_per_booking=args.candidates,
            scenario=given(args.scenario, world.example_scenario),
            drift_start=given(args.drift_start, world.example_drift_start),
            dirty_rates=DirtyRates(**rates),
        )
    except ValidationError as exc:
        messages = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            loc = ".".join(str(part) for part in error["loc"])
            messages.append(f"{loc}: {message}" if loc and not message.startswith(loc) else message)
        raise UsageError("; ".join(messages)) from None


def _cmd_generate(args: argparse.Namespace) -> int:
    from data_pipeline.example_source.emit import write_period
    from data_pipeline.example_source.sinks import open_source

    config = _config(args)
    began = time.perf_counter()
    source = open_source()
    print(f"source: {source.location}")
    counts, manifest = write_period(source, config, args.chunk_hours)
    elapsed = time.perf_counter() - began
    for table, n in counts.items():
        print(f"{table}: {n} rows")
    if config.scenario.value == "dirty":
        by_defect = {} if manifest.empty else manifest["defect"].value_counts().to_dict()
        print("dirty rows: " + json.dumps(dict(sorted(by_defect.items()))))
        if args.manifest is not None and not manifest.empty:
            args.manifest.parent.mkdir(parents=True, exist_ok=True)
            manifest.to_csv(args.manifest, index=False)
            print(f"manifest: {args.manifest}")
    print(f"elapsed: {elapsed:.2f} s")
    return 0


def _cmd_oracle(args: argparse.Namespace) -> int:
    from data_pipeline.example_source.generator import generate
    from data_pipeline.example_source.metrics import oracle_metrics_of

    config = _config(args)
    metrics = oracle_metrics_of(generate(config))
    report = {
        "config": json.loads(config.model_dump_json()),
        **{name: m.model_dump() for name, m in metrics.items()},
    }
    print(json.dumps(report, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from data_pipeline.batch.errors import BadInput, StepFailed

    try:
        result: int = args.handler(args)
    except (UsageError, BadInput) as exc:
        parser.exit(2, f"{PROG} {args.command}: error: {exc}\n")
    except StepFailed as exc:  # the step's own one-line reason
        print(f"{PROG} {args.command}: failed: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:  # settings from the environment / env file
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
        loc = ".".join(str(p) for p in first["loc"])
        message = f"invalid setting {loc}: {first['msg']}"
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 2
    except Exception as exc:  # a step failed: one line naming the problem, non-zero exit
        detail = (str(exc).strip().splitlines() or [""])[0]
        print(f"{PROG} {args.command}: failed: {type(exc).__name__}: {detail}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
