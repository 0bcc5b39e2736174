"""The one settings object: env file, environment, nested groups, overrides, frozen run config."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from training_pipeline.rundir import RunDir
from training_pipeline.settings import GateMode, TrainingSettings, load_settings


def test_defaults() -> None:
    s = load_settings()
    assert s.model_name == "driver_ranking"
    assert s.dataset.feature_service == "driver_ranking_v1"
    assert s.estimator.class_path == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert s.gate.mode is GateMode.ENABLED
    assert s.gate.promote_to == "champion"


def test_env_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text(
        "MLFLOW_TRACKING_URI=http://from-file:5000\n"
        "MLOPS_TRAINING_MODEL_NAME=from_file\n"
        "MLOPS_TRAINING_GATE__MODE=dry_run\n"
        'MLOPS_TRAINING_GATE__MINIMUMS={"roc_auc": 0.6}\n'
    )
    monkeypatch.setenv("MLOPS_ENV_FILE", str(env_file))
    s = load_settings()
    assert s.tracking_uri == "http://from-file:5000"
    assert s.model_name == "from_file"
    assert s.gate.mode is GateMode.DRY_RUN
    assert s.gate.minimums == {"roc_auc": 0.6}

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-env:5000")
    monkeypatch.setenv("MLOPS_TRAINING_ESTIMATOR__HYPERPARAMETERS", '{"max_iter": 7}')
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path / "d"))
    s = load_settings()
    assert s.tracking_uri == "http://from-env:5000"  # the environment wins over the file
    assert s.estimator.hyperparameters == {"max_iter": 7}
    assert s.runs_dir == tmp_path / "d" / "training" / "runs"


def test_gate_config_rejects_unknown_or_misdirected_metrics() -> None:
    with pytest.raises(ValidationError, match="only higher-is-better"):
        TrainingSettings(gate={"minimums": {"log_loss": 0.5}})
    with pytest.raises(ValidationError, match="only lower-is-better"):
        TrainingSettings(gate={"maximums": {"roc_auc": 0.9}})
    with pytest.raises(ValidationError, match="unknown metric"):
        TrainingSettings(gate={"max_regression": {"accuracy_typo": 0.1}})
    with pytest.raises(ValidationError, match="mode"):
        TrainingSettings(gate={"mode": "sometimes"})


def test_estimator_must_be_sklearn() -> None:
    with pytest.raises(ValidationError, match="scikit-learn class"):
        TrainingSettings(estimator={"class_path": "os.system"})


def test_window_resolution() -> None:
    w = TrainingSettings(window={"days": 2}).window
    start, end = w.resolve(now=datetime(2024, 5, 3, 10, 42, tzinfo=UTC))
    assert end == datetime(2024, 5, 3, 10, tzinfo=UTC)
    assert start == datetime(2024, 5, 1, 10, tzinfo=UTC)
    explicit = TrainingSettings(window={"start": "2024-01-01", "end": "2024-01-05"}).window
    assert explicit.resolve() == (
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 5, tzinfo=UTC),
    )
    with pytest.raises(ValidationError, match="must be after"):
        TrainingSettings(window={"start": "2024-01-05", "end": "2024-01-01"})


def test_overrides_deep_merge_and_refuse_environment_fields() -> None:
    s = TrainingSettings().with_overrides(
        {"estimator": {"hyperparameters": {"max_iter": 3}}, "gate": {"mode": "dry_run"}}
    )
    assert s.estimator.hyperparameters["max_iter"] == 3
    assert s.estimator.hyperparameters["learning_rate"] == 0.05  # merged, not replaced
    assert s.gate.mode is GateMode.DRY_RUN
    with pytest.raises(ValueError, match="may only change"):
        TrainingSettings().with_overrides({"model_name": "other"})


def test_run_folder_freezes_the_run_configuration(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path / "run")
    rd.freeze_settings(TrainingSettings().with_overrides({"split": {"test_fraction": 0.3}}))
    later = TrainingSettings(mlflow_tracking_uri="http://elsewhere", split={"test_fraction": 0.1})
    effective = rd.settings(later)
    assert effective.split.test_fraction == 0.3  # the run's own configuration
    assert effective.tracking_uri == "http://elsewhere"  # environment fields stay current


def test_without_a_tracking_uri_the_platforms_mlflow_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A CLI call (`training-pipeline history`, `rollback`) from the checkout talks to the MLflow
    that `./run.sh all up` started, not to a stray ./mlruns in the working directory."""
    assert TrainingSettings().tracking_uri == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_PORT", "15000")
    assert TrainingSettings().tracking_uri == "http://127.0.0.1:15000"
    monkeypatch.setenv("MLOPS_BIND_HOST", "0.0.0.0")  # a listen address, not one to call
    assert TrainingSettings().tracking_uri == "http://127.0.0.1:15000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert TrainingSettings().tracking_uri == "http://mlflow:5000"
