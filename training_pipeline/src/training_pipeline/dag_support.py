"""What the training DAG's tasks call: conf parsing, the run folder of a DAG run, and mapping step
outcomes to Airflow task states (failed / skipped with the reason).

The DAG file imports nothing heavy at module level; each task imports this module when it runs.
Airflow's exceptions are imported lazily, so this module also loads without Airflow (tests).

DAG run conf (every key optional):

- ``window_start`` / ``window_end`` (ISO 8601, UTC when naive), ``window_days``: the data window;
- ``gate_mode``: ``disabled`` | ``dry_run`` | ``enabled`` (overrides the configured mode);
- ``overrides``: run configuration overrides, e.g. ``{"estimator": {"hyperparameters": {...}}}``;
- ``alert``: the alert payload that triggered the run (recorded with the run, tagged in MLflow);
- ``reason``: free text, recorded.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training_pipeline.rundir import safe_name
from training_pipeline.settings import GateMode, TrainingSettings, load_settings

CONF_KEYS: tuple[str, ...] = (
    "window_start",
    "window_end",
    "window_days",
    "gate_mode",
    "overrides",
    "alert",
    "reason",
)


class ConfError(ValueError):
    """The DAG run conf is malformed."""


def _quiet_mlflow() -> None:
    # download progress bars only clutter task logs
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _time(value: Any, key: str) -> str:
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise ConfError(f"conf {key}: invalid ISO 8601 time {value!r}") from None
    return (parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed).isoformat()


def settings_from_conf(
    conf: dict[str, Any], base: TrainingSettings | None = None
) -> TrainingSettings:
    """The settings of a DAG run: environment + conf's window and overrides."""
    unknown = sorted(k for k, v in conf.items() if k not in CONF_KEYS and v is not None)
    if unknown:
        raise ConfError(f"unknown conf keys {unknown}; known: {', '.join(CONF_KEYS)}")
    settings = base or load_settings()
    overrides_value = conf.get("overrides") or {}
    if not isinstance(overrides_value, dict):
        raise ConfError("conf overrides must be an object")
    overrides: dict[str, Any] = dict(overrides_value)
    window = dict(overrides.get("window") or {})
    if conf.get("window_start") is not None:
        window["start"] = _time(conf["window_start"], "window_start")
    if conf.get("window_end") is not None:
        window["end"] = _time(conf["window_end"], "window_end")
    if conf.get("window_days") is not None:
        window["days"] = conf["window_days"]
    if window:
        overrides["window"] = window
    try:
        return settings.with_overrides(overrides) if overrides else settings
    except ValueError as exc:
        raise ConfError(f"conf overrides: {exc}") from None


def gate_mode_from_conf(conf: dict[str, Any]) -> GateMode | None:
    value = conf.get("gate_mode")
    if value is None:
        return None
    try:
        return GateMode(str(value))
    except ValueError:
        raise ConfError(
            f"conf gate_mode {value!r}: expected one of {', '.join(m.value for m in GateMode)}"
        ) from None


def run_dir_for(settings: TrainingSettings, dag_id: str, run_id: str) -> Path:
    return settings.runs_dir / safe_name(dag_id) / safe_name(run_id)


def _fail(message: str) -> BaseException:
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(message)


def _skip(message: str) -> BaseException:
    from airflow.sdk.exceptions import AirflowSkipException

    return AirflowSkipException(message)


def build_task(conf: dict[str, Any], *, dag_id: str, run_id: str) -> str:
    from training_pipeline import steps

    _quiet_mlflow()
    try:
        settings = settings_from_conf(conf)
        gate_mode_from_conf(conf)  # reject a bad mode before any work
    except ConfError as exc:
        raise _fail(str(exc)) from None
    run_dir = run_dir_for(settings, dag_id, run_id)
    trigger = {
        "source": "alert" if conf.get("alert") else "airflow",
        "dag_id": dag_id,
        "run_id": run_id,
        "conf": {k: v for k, v in conf.items() if v is not None},
    }
    if conf.get("alert"):
        trigger["alert"] = conf["alert"]
    manifest = steps.build_training_set(run_dir, settings, trigger=trigger)
    print(
        f"training set: {manifest['n_rows']} rows, {manifest['n_candidates']} candidates, "
        f"window {manifest['window_start']} .. {manifest['window_end']}, "
        f"{manifest['training_set_hash']}, run folder {run_dir}"
    )
    return str(run_dir)


def validate_task(run_dir: str) -> str:
    from training_pipeline import steps
    from training_pipeline.validation import ValidationFailed

    try:
        report = steps.validate(Path(run_dir))
    except ValidationFailed as exc:
        raise _fail(str(exc)) from None
    print(f"validation passed: {report.n_rows} rows, positive rate {report.positive_rate}")
    return run_dir


def train_task(run_dir: str) -> str:
    from training_pipeline import steps

    summary = steps.train(Path(run_dir))
    print(
        f"trained {summary['estimator_class']} on {summary['n_train']} rows before "
        f"{summary['cutoff']}; holdout {summary['n_test']} rows"
    )
    return run_dir


def evaluate_task(run_dir: str) -> str:
    from training_pipeline import steps

    metrics = steps.evaluate(Path(run_dir))["metrics"]
    print("holdout: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))
    return run_dir


def register_task(run_dir: str) -> str:
    from training_pipeline import steps

    _quiet_mlflow()
    registration = steps.register(Path(run_dir))
    print(
        f"registered {registration['model_name']} v{registration['version']} "
        f"(MLflow run {registration['run_id']})"
    )
    return run_dir


def gate_task(run_dir: str, conf: dict[str, Any], *, dag_id: str, run_id: str) -> dict[str, Any]:
    """Run the gate; a refusal fails the task (or skips it, per ``gate.on_refusal``), a gate that
    moved nothing by design (disabled, dry run) skips it — with the reason as the message."""
    from training_pipeline import steps
    from training_pipeline.gate import GateStatus
    from training_pipeline.rundir import RunDir

    _quiet_mlflow()
    try:
        mode = gate_mode_from_conf(conf)
    except ConfError as exc:
        raise _fail(str(exc)) from None
    outcome = steps.gate(Path(run_dir), mode=mode, actor=f"airflow:{dag_id}/{run_id}")
    print(f"gate {outcome.status.value} ({outcome.mode.value}): {outcome.message}")
    if outcome.decision is not None:
        for check in outcome.decision.checks:
            print(f"  [{'ok' if check.passed else 'FAIL'}] {check.kind}: {check.detail}")
    if outcome.status == GateStatus.REFUSED:
        settings = RunDir(Path(run_dir)).settings(load_settings())
        if settings.gate.on_refusal == "skip":
            raise _skip(f"gate refused the candidate: {outcome.message}")
        raise _fail(f"gate refused the candidate: {outcome.message}")
    if outcome.status == GateStatus.SKIPPED:
        raise _skip(outcome.message)
    return {
        "status": outcome.status.value,
        "version": outcome.version,
        "alias": outcome.alias,
        "message": outcome.message,
    }
