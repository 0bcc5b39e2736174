"""``data-pipeline``: the data pipeline's steps as sub-commands.

Batch pipeline (``--start``/``--end``: UTC, whole hours, ``end`` exclusive)::

    data-pipeline ingest|validate|transform|publish|materialize --start T --end T
    data-pipeline apply                      # feast apply (no interval)
    data-pipeline run --start T --end T      # all six steps in order

Stream: ``data-pipeline stream-consume`` (``data_pipeline.stream_consumer``). The batch steps read
the configured source (``MLOPS_SOURCE``); the example company's own programs (generate, oracle,
emit, dispatch) are ``example-project``'s.

Exit codes: 0 success, 1 the step failed (validation rejected the batch, the source is
unreachable, an earlier step has not run, …), 2 bad input (arguments, an interval not on whole
hours, …). A failure prints one line naming the problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from mlops_common.cli import UsageError, add_command, run_command

__all__ = ["PROG", "UsageError", "build_parser", "main"]

PROG = "data-pipeline"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="The data pipeline's steps as sub-commands."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
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
        add_command(
            commands,
            name,
            _cmd_step,
            summary=text,
            description=text + ".",
            parents=[interval],
            step=name,
        )
    add_command(
        commands,
        "apply",
        _cmd_step,
        summary="feast apply of data_pipeline/feature_repo with the configured stores (idempotent)",
        description="Register the feature repository's definitions (feast apply semantics).",
        step="apply",
        start=None,
        end=None,
    )
    add_command(
        commands,
        "run",
        _cmd_run,
        parents=[interval],
        summary="all steps in order: ingest validate transform publish apply materialize",
        description="Run every step of the batch pipeline on the interval; stop at a failure.",
    )

    from data_pipeline.stream_consumer.cli import add_parser as add_stream_consume

    add_stream_consume(commands)
    return parser


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


def main(argv: Sequence[str] | None = None) -> int:
    from data_pipeline.batch.errors import BadInput, StepFailed

    return run_command(
        build_parser(),
        argv,
        PROG,
        usage_errors=(UsageError, BadInput),
        reported_errors=(StepFailed,),  # the step's own one-line reason
    )


if __name__ == "__main__":
    sys.exit(main())
