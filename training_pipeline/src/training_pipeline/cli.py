"""``training-pipeline``: the training pipeline's steps and registry operations as sub-commands.

Exit codes: 0 success; 1 the step failed (e.g. validation failed — the reason is printed);
2 bad arguments or configuration; 3 the gate refused the candidate (no alias moved);
4 the gate moved nothing by design (disabled, dry run, already holding the alias).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mlops_common.cli import json_object, positive_float, utc_time, validation_message
from training_pipeline.gate import EXIT_FAILED, EXIT_OK, EXIT_USAGE

PROG = "training-pipeline"


class UsageError(Exception):
    """Bad input detected after argument parsing (exit code 2)."""


def _run_dir_option(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--run-dir",
        type=Path,
        required=required,
        default=None,
        help="the run folder the steps exchange data through"
        + ("" if required else " (default: a new folder under $MLOPS_DATA_DIR/training/runs)"),
    )


def _window_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training window and configuration")
    group.add_argument("--start", type=utc_time, default=None, help="window start (UTC)")
    group.add_argument("--end", type=utc_time, default=None, help="window end, exclusive (UTC)")
    group.add_argument("--days", type=positive_float, default=None, help="window length")
    group.add_argument(
        "--overrides",
        type=json_object,
        default=None,
        help='run configuration overrides, e.g. \'{"estimator": {"hyperparameters": {...}}}\'',
    )
    group.add_argument(
        "--trigger", type=json_object, default=None, help="why the run started (JSON, recorded)"
    )


def _gate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mode",
        choices=["disabled", "dry_run", "enabled"],
        default=None,
        help="override the gate mode of the configuration",
    )
    parser.add_argument(
        "--actor", default=None, help="who moves the alias (recorded; default: gate:cli)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Training pipeline steps (they exchange data through a run folder) and "
        "model registry operations.",
        epilog="exit codes: 0 ok, 1 failed, 2 usage, 3 gate refused, 4 gate moved nothing",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    build = commands.add_parser(
        "build-training-set",
        help="labelled events in the window + point-in-time features (Feast) -> parquet",
    )
    _run_dir_option(build, required=False)
    _window_options(build)
    build.set_defaults(handler=_cmd_build)

    for name, handler, text in (
        ("validate", _cmd_validate, "validate the training set (pandera); non-zero on failure"),
        ("train", _cmd_train, "time-based split, fit the configured estimator"),
        ("evaluate", _cmd_evaluate, "holdout metrics, calibration, top-1, importances, plots"),
        ("register", _cmd_register, "log the run and model to MLflow, register a version"),
    ):
        step = commands.add_parser(name, help=text)
        _run_dir_option(step, required=True)
        step.set_defaults(handler=handler)

    gate = commands.add_parser(
        "gate", help="promotion gate: absolute bounds and no regression vs the champion"
    )
    _run_dir_option(gate, required=True)
    _gate_options(gate)
    gate.set_defaults(handler=_cmd_gate)

    run = commands.add_parser("run", help="every step in order, in this process")
    _run_dir_option(run, required=False)
    _window_options(run)
    _gate_options(run)
    run.set_defaults(handler=_cmd_run)

    promote = commands.add_parser("promote", help="point an alias at a version (recorded)")
    promote.add_argument("version", help="the model version")
    promote.add_argument("--alias", default="champion", choices=["champion", "challenger"])
    promote.add_argument("--reason", required=True, help="why (recorded in the promotion log)")
    promote.add_argument("--actor", default=None, help="who (default: $MLOPS_ACTOR or the user)")
    promote.set_defaults(handler=_cmd_promote)

    rollback = commands.add_parser(
        "rollback", help="move the alias back to the version that held it before (recorded)"
    )
    rollback.add_argument("--alias", default="champion", choices=["champion", "challenger"])
    rollback.add_argument("--reason", required=True, help="why (recorded in the promotion log)")
    rollback.add_argument("--actor", default=None, help="who (default: $MLOPS_ACTOR or the user)")
    rollback.set_defaults(handler=_cmd_rollback)

    history = commands.add_parser("history", help="the aliases and the promotion log")
    history.add_argument("--json", action="store_true", help="print JSON")
    history.set_defaults(handler=_cmd_history)

    config = commands.add_parser("config", help="print the effective settings (JSON)")
    config.set_defaults(handler=_cmd_config)
    return parser


# --- helpers ----------------------------------------------------------------------------------


def _settings() -> Any:
    from training_pipeline.settings import load_settings

    return load_settings()


def _configured(args: argparse.Namespace) -> Any:
    """Settings with the command line's window and overrides applied."""
    settings = _settings()
    overrides: dict[str, Any] = dict(args.overrides or {})
    window = dict(overrides.get("window") or {})
    for key in ("start", "end", "days"):
        value = getattr(args, key)
        if value is not None:
            window[key] = value.isoformat() if isinstance(value, datetime) else value
    if window:
        overrides["window"] = window
    if not overrides:
        return settings
    try:
        return settings.with_overrides(overrides)
    except ValidationError:
        raise
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _new_run_dir(args: argparse.Namespace, settings: Any) -> Path:
    from training_pipeline.rundir import new_run_id

    if args.run_dir is not None:
        return Path(args.run_dir)
    return Path(settings.runs_dir) / new_run_id()


def _print(payload: Any) -> None:
    print(json.dumps(payload, indent=2, sort_keys=True, default=str))


def _mode(args: argparse.Namespace) -> Any:
    from training_pipeline.settings import GateMode

    return None if args.mode is None else GateMode(args.mode)


def _report_gate(outcome: Any) -> int:
    stream = sys.stdout if outcome.status.value == "promoted" else sys.stderr
    print(f"gate: {outcome.status.value} ({outcome.mode.value}): {outcome.message}", file=stream)
    if outcome.decision is not None:
        for check in outcome.decision.checks:
            mark = "ok  " if check.passed else "FAIL"
            print(f"  [{mark}] {check.kind}: {check.detail}", file=stream)
    code: int = outcome.exit_code
    return code


# --- commands ---------------------------------------------------------------------------------


def _cmd_build(args: argparse.Namespace) -> int:
    from training_pipeline import steps

    settings = _configured(args)
    run_dir = _new_run_dir(args, settings)
    manifest = steps.build_training_set(run_dir, settings, trigger=args.trigger)
    print(f"run folder: {run_dir}")
    _print(manifest)
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    from training_pipeline import steps
    from training_pipeline.validation import ValidationFailed

    try:
        report = steps.validate(args.run_dir)
    except ValidationFailed as exc:
        print(f"{PROG} validate: training set failed validation:", file=sys.stderr)
        for reason in exc.reasons:
            print(f"  - {reason}", file=sys.stderr)
        return EXIT_FAILED
    _print(report.model_dump())
    return EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    from training_pipeline import steps

    _print(steps.train(args.run_dir))
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from training_pipeline import steps

    result = steps.evaluate(args.run_dir)
    _print({"metrics": result["metrics"], "plots": result["plots"]})
    return EXIT_OK


def _cmd_register(args: argparse.Namespace) -> int:
    from training_pipeline import steps

    _print(steps.register(args.run_dir))
    return EXIT_OK


def _cmd_gate(args: argparse.Namespace) -> int:
    from training_pipeline import steps

    outcome = steps.gate(args.run_dir, mode=_mode(args), actor=args.actor or "gate:cli")
    return _report_gate(outcome)


def _cmd_run(args: argparse.Namespace) -> int:
    from training_pipeline import steps
    from training_pipeline.validation import ValidationFailed

    settings = _configured(args)
    run_dir = _new_run_dir(args, settings)
    print(f"run folder: {run_dir}")
    steps.build_training_set(run_dir, settings, trigger=args.trigger)
    try:
        steps.validate(run_dir, settings)
    except ValidationFailed as exc:
        print(f"{PROG} run: training set failed validation:", file=sys.stderr)
        for reason in exc.reasons:
            print(f"  - {reason}", file=sys.stderr)
        return EXIT_FAILED
    steps.train(run_dir, settings)
    metrics = steps.evaluate(run_dir, settings)["metrics"]
    registration = steps.register(run_dir, settings)
    outcome = steps.gate(run_dir, settings, mode=_mode(args), actor=args.actor or "gate:cli")
    _print(
        {
            "registered": registration,
            "metrics": {k: metrics[k] for k in ("roc_auc", "top1_accuracy", "log_loss")},
            "durations_s": steps.durations(run_dir),
        }
    )
    return _report_gate(outcome)


def _cmd_promote(args: argparse.Namespace) -> int:
    from training_pipeline.registry import promote

    record = promote(
        _settings(), args.version, alias=args.alias, reason=args.reason, actor=args.actor
    )
    print(
        f"{record.alias}: {(record.from_version and 'v' + record.from_version) or 'none'} -> "
        f"v{record.to_version} (promotion log #{record.seq})"
    )
    return EXIT_OK


def _cmd_rollback(args: argparse.Namespace) -> int:
    from training_pipeline.registry import rollback

    record = rollback(_settings(), alias=args.alias, reason=args.reason, actor=args.actor)
    print(
        f"{record.alias} rolled back: v{record.from_version} -> v{record.to_version} "
        f"(promotion log #{record.seq})"
    )
    return EXIT_OK


def _cmd_history(args: argparse.Namespace) -> int:
    from training_pipeline.registry import dump_json, format_history, history

    records, current = history(_settings())
    print(dump_json(records, current) if args.json else format_history(records, current))
    return EXIT_OK


def _cmd_config(args: argparse.Namespace) -> int:
    print(_settings().model_dump_json(indent=2))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    from training_pipeline.estimators import EstimatorConfigError
    from training_pipeline.registry import RegistryError
    from training_pipeline.rundir import RunDirError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except (UsageError, EstimatorConfigError) as exc:
        parser.exit(EXIT_USAGE, f"{PROG} {args.command}: error: {exc}\n")
    except ValidationError as exc:
        parser.exit(
            EXIT_USAGE,
            f"{PROG} {args.command}: bad configuration: {validation_message(exc, tidy=True)}\n",
        )
    except (RegistryError, RunDirError) as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # a step failed: one line naming the problem, non-zero exit
        detail = (str(exc).strip().splitlines() or [""])[0]
        print(f"{PROG} {args.command}: failed: {type(exc).__name__}: {detail}", file=sys.stderr)
        return EXIT_FAILED
    return result


if __name__ == "__main__":
    sys.exit(main())
