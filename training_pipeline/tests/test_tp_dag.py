"""The training DAG: it parses (thin, nothing heavy at module level), its conf, and how the
gate's outcome becomes the task's state (failed / skipped with the reason, never a silent green).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tp_fixtures import World, small_settings

from mlops_testing.airflow import python_json
from training_pipeline import dag_support, steps
from training_pipeline.dag_support import ConfError, gate_mode_from_conf, settings_from_conf
from training_pipeline.gate import GateOutcome, GateStatus
from training_pipeline.rundir import RunDir
from training_pipeline.settings import GateMode, TrainingSettings

DAGS = Path(__file__).resolve().parents[1] / "dags"

PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dag = bag.dags.get("driver_ranking_training")
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "edges": sorted([t.task_id, d] for t in dag.tasks for d in t.downstream_task_ids)
             if dag else [],
    "params": sorted(dag.params.keys()) if dag else [],
    "max_active_runs": dag.max_active_runs if dag else None,
    "heavy": sorted(m for m in sys.modules
                    if m.split(".")[0] in ("training_pipeline", "mlflow", "sklearn", "feast",
                                           "pandas", "matplotlib")),
}))
"""


def test_dag_parses_thin_with_the_task_chain(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(tmp_path / "airflow"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    parsed = python_json("-W", "ignore", "-c", PARSE, str(DAGS), env=env, timeout=120)
    assert parsed["errors"] == {}
    assert parsed["edges"] == sorted(
        [
            ["build_training_set", "validate"],
            ["validate", "train"],
            ["train", "evaluate"],
            ["evaluate", "register"],
            ["register", "gate"],
        ]
    )
    assert parsed["params"] == sorted(dag_support.CONF_KEYS)
    assert parsed["max_active_runs"] == 1  # one promotion decision at a time
    assert parsed["heavy"] == []  # nothing heavy imported when the DAG file is parsed


def test_conf_window_overrides_and_errors() -> None:
    base = TrainingSettings()
    s = settings_from_conf(
        {
            "window_start": "2024-01-01",
            "window_end": "2024-01-08T00:00:00+00:00",
            "overrides": {"estimator": {"hyperparameters": {"max_iter": 5}}},
            "alert": {"labels": {"alertname": "DriftHigh"}},
            "gate_mode": None,
        },
        base,
    )
    assert s.window.start is not None and s.window.start.isoformat() == "2024-01-01T00:00:00+00:00"
    assert s.window.end is not None and s.window.end.day == 8
    assert s.estimator.hyperparameters["max_iter"] == 5
    assert settings_from_conf({"window_days": 3}, base).window.days == 3
    with pytest.raises(ConfError, match="unknown conf keys"):
        settings_from_conf({"windw_start": "2024-01-01"}, base)
    with pytest.raises(ConfError, match="invalid ISO 8601"):
        settings_from_conf({"window_start": "yesterday"}, base)
    with pytest.raises(ConfError, match="may only change"):
        settings_from_conf({"overrides": {"tracking_uri": "x"}}, base)
    assert gate_mode_from_conf({"gate_mode": "dry_run"}) is GateMode.DRY_RUN
    assert gate_mode_from_conf({}) is None
    with pytest.raises(ConfError, match="expected one of"):
        gate_mode_from_conf({"gate_mode": "on"})


def _outcome(status: GateStatus, message: str) -> GateOutcome:
    return GateOutcome(
        status=status,
        mode=GateMode.ENABLED,
        model_name="m",
        version="2",
        alias="champion",
        message=message,
        decision=None,
    )


@pytest.mark.parametrize(
    ("status", "on_refusal", "expected"),
    [
        (GateStatus.REFUSED, "fail", "AirflowFailException"),
        (GateStatus.REFUSED, "skip", "AirflowSkipException"),
        (GateStatus.SKIPPED, "fail", "AirflowSkipException"),
        (GateStatus.PROMOTED, "fail", None),
    ],
)
def test_gate_outcome_becomes_the_task_state(
    status: GateStatus,
    on_refusal: str,
    expected: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    rd = RunDir.create(tmp_path / "run")
    rd.freeze_settings(TrainingSettings().with_overrides({"gate": {"on_refusal": on_refusal}}))
    seen: dict[str, object] = {}

    def fake_gate(run_dir: Path, *, mode: GateMode | None, actor: str) -> GateOutcome:
        seen.update(mode=mode, actor=actor)
        return _outcome(status, "the reason: roc_auc 0.61 < minimum 0.70")

    monkeypatch.setattr(steps, "gate", fake_gate)
    conf = {"gate_mode": "enabled"}
    if expected is None:
        result = dag_support.gate_task(str(rd.path), conf, dag_id="d", run_id="manual__1")
        assert result["status"] == "promoted"
    else:
        with pytest.raises(Exception) as exc:
            dag_support.gate_task(str(rd.path), conf, dag_id="d", run_id="manual__1")
        assert type(exc.value).__name__ == expected
        assert "the reason: roc_auc 0.61 < minimum 0.70" in str(exc.value)
    assert seen == {"mode": GateMode.ENABLED, "actor": "airflow:d/manual__1"}


def test_validation_failure_fails_the_task_with_the_reason(
    small_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    run_dir = tmp_path / "run"
    steps.build_training_set(
        run_dir,
        small_settings(small_world, validation={"min_rows": 10**6}),
        labels=small_world.labels,
        features=small_world.features,
    )
    with pytest.raises(Exception) as exc:
        dag_support.validate_task(str(run_dir))
    assert type(exc.value).__name__ == "AirflowFailException"
    assert "min_rows" in str(exc.value)
