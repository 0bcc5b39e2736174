"""``example-project``: the example company's programs as sub-commands.

    example-project generate --start T --end T [world options] [--chunk-hours 24] [--manifest F]
    example-project oracle   --start T --end T [world options]   # the true model's metrics (JSON)
    example-project emit --hour T      # one hour of the configured world (the example_source DAG)
    example-project dispatch [--max-bookings N]   # live bookings (the launcher's traffic service)

``generate`` and ``emit`` write to the example's storage (``MLOPS_DATABASE_URL`` /
``MLOPS_DATA_DIR``, see ``example_project.storage``); world options not given come from the
``MLOPS_EXAMPLE_*`` settings, so that ``generate`` writes the same world as ``emit`` and the stream.

Exit codes: 0 success, 1 the command failed (the storage is unreachable, …), 2 bad input
(arguments, a time not on a whole hour, settings, …). A failure prints one line naming the
problem.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mlops_common.cli import (
    UsageError,
    add_command,
    non_negative_int,
    positive_int,
    run_command,
    utc_time,
    validation_message,
)
from mlops_common.intervals import BadInput

if TYPE_CHECKING:
    from example_project.world.config import ExampleSourceConfig

PROG = "example-project"


def _rate(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid rate {value!r}") from None
    if not 0.0 <= rate <= 0.5:
        raise argparse.ArgumentTypeError(f"rate must be between 0 and 0.5 (got {value})")
    return rate


def _world_options() -> argparse.ArgumentParser:
    from example_project.world.config import Scenario

    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("example world")
    group.add_argument("--start", type=utc_time, required=True, help="first hour (UTC)")
    group.add_argument("--end", type=utc_time, required=True, help="end hour, exclusive (UTC)")
    group.add_argument(
        "--scenario",
        choices=[s.value for s in Scenario],
        default=None,
        help="scenario (default: MLOPS_EXAMPLE_SCENARIO, normal)",
    )
    group.add_argument(
        "--seed", type=non_negative_int, default=None, help="seed (default: MLOPS_EXAMPLE_SEED, 42)"
    )
    group.add_argument(
        "--drivers",
        type=positive_int,
        default=None,
        help="number of drivers (default: MLOPS_EXAMPLE_DRIVERS, 1000)",
    )
    group.add_argument(
        "--bookings-per-hour",
        type=non_negative_int,
        default=None,
        help="(default: MLOPS_EXAMPLE_BOOKINGS_PER_HOUR, 30)",
    )
    group.add_argument(
        "--candidates", type=positive_int, default=5, help="candidates per booking (default: 5)"
    )
    group.add_argument(
        "--drift-start",
        type=utc_time,
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
        prog=PROG, description="The example company's programs as sub-commands."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    world = _world_options()

    generate = add_command(
        commands,
        "generate",
        _cmd_generate,
        parents=[world],
        summary="generate example data and write it to the example's storage",
        description=(
            "Generate the example tables for [start, end) and write them to the storage that "
            "MLOPS_DATABASE_URL / MLOPS_DATA_DIR point at. Re-running a slice is idempotent."
        ),
    )
    generate.add_argument(
        "--chunk-hours",
        type=positive_int,
        default=24,
        help="generate and write this many hours at a time (default: 24)",
    )
    generate.add_argument(
        "--manifest", type=Path, default=None, help="write the dirty-row manifest to this CSV"
    )

    add_command(
        commands,
        "oracle",
        _cmd_oracle,
        parents=[world],
        summary="print the oracle's metrics (JSON)",
        description="Generate [start, end) in memory and print the true model's metrics as JSON.",
    )

    emit = add_command(
        commands,
        "emit",
        _cmd_emit,
        summary="write one hour of the MLOPS_EXAMPLE_* world to the storage (example_source DAG)",
        description=(
            "Write the driver statistics delivered in [HOUR, HOUR+1h) and the bookings of "
            "[HOUR-1h, HOUR) of the example world (MLOPS_EXAMPLE_SEED, _DRIVERS, _SCENARIO, "
            "_BOOKINGS_PER_HOUR, _DRIFT_START) to the example's storage. Idempotent."
        ),
    )
    emit.add_argument("--hour", type=utc_time, required=True, help="a whole UTC hour")

    dispatch = add_command(
        commands,
        "dispatch",
        _cmd_dispatch,
        summary="the example company's live bookings: rankings from the API, outcomes as feedback",
        description=(
            "Send bookings to the prediction API at MLOPS_DISPATCH_RATE a second, assign a "
            "driver, draw the trip's outcome from the example world's true model and report it "
            "as feedback after a label delay (see example_project.dispatcher). "
            "Runs until SIGTERM or --max-bookings; /metrics on DISPATCH_METRICS_PORT (0: off)."
        ),
    )
    dispatch.add_argument("--max-bookings", type=positive_int, default=None)
    return parser


def _config(args: argparse.Namespace) -> ExampleSourceConfig:
    """The world of the command line; options not given come from the ``MLOPS_EXAMPLE_*``
    settings, so that ``generate`` writes the same world as ``emit`` and the stream."""
    from example_project.settings import ExampleProjectSettings
    from example_project.world.config import DirtyRates, ExampleSourceConfig

    world = ExampleProjectSettings()
    rates = {
        name: getattr(args, f"{name}_rate")
        for name in ("null", "out_of_range", "duplicate", "late")
        if getattr(args, f"{name}_rate") is not None
    }
    values: dict[str, Any] = {
        "seed": world.example_seed if args.seed is None else args.seed,
        "n_drivers": world.example_drivers if args.drivers is None else args.drivers,
        "start": args.start,
        "end": args.end,
        "bookings_per_hour": (
            world.example_bookings_per_hour
            if args.bookings_per_hour is None
            else args.bookings_per_hour
        ),
        "candidates_per_booking": args.candidates,
        "scenario": world.example_scenario if args.scenario is None else args.scenario,
        "drift_start": world.example_drift_start if args.drift_start is None else args.drift_start,
    }
    try:
        return ExampleSourceConfig(**values, dirty_rates=DirtyRates(**rates))
    except ValidationError as exc:
        raise UsageError(validation_message(exc, tidy=True)) from None


def _cmd_generate(args: argparse.Namespace) -> int:
    from contextlib import closing

    from example_project.emit import write_period
    from example_project.settings import ExampleProjectSettings
    from example_project.storage import open_example_source

    config = _config(args)
    began = time.perf_counter()
    with closing(open_example_source(ExampleProjectSettings())) as source:
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
    from example_project.oracle import oracle_metrics_of
    from example_project.world.generator import generate

    config = _config(args)
    metrics = oracle_metrics_of(generate(config))
    report = {
        "config": json.loads(config.model_dump_json()),
        **{name: m.model_dump() for name, m in metrics.items()},
    }
    print(json.dumps(report, indent=2))
    return 0


def _cmd_emit(args: argparse.Namespace) -> int:
    from example_project.emit import emit_hour
    from example_project.settings import ExampleProjectSettings
    from example_project.world.config import to_utc_hour

    settings = ExampleProjectSettings()
    try:
        hour = to_utc_hour(args.hour, "hour")
        settings.world_config(hour, hour + timedelta(hours=1))
    except ValidationError as exc:
        raise UsageError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    summary = emit_hour(settings, hour)
    print(f"emit: {summary['rows']} into {summary['source']} in {summary['seconds']:.2f} s")
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_dispatch(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from example_project.dispatcher import run_dispatcher
    from example_project.settings import ExampleProjectSettings

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    settings = ExampleProjectSettings()
    if not settings.serving_api_key.get_secret_value():
        raise UsageError("SERVING_API_KEY is empty: the prediction API needs its key")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    print(
        f"dispatching {settings.dispatch_rate:g} bookings/s to "
        f"{settings.dispatch_serving_base_url} (scenario {settings.example_scenario}, explore "
        f"{settings.dispatch_explore:g}); metrics on port {settings.dispatch_metrics_port}",
        flush=True,
    )
    done = run_dispatcher(settings, stop, args.max_bookings)
    print(f"dispatched {done} bookings", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), argv, PROG, usage_errors=(UsageError, BadInput))


if __name__ == "__main__":
    sys.exit(main())
