"""Registration, lineage, the gate's modes and decisions, alias moves, rollback and the promotion
log — against a real MLflow server (tests/conftest.py ``mlflow_server``)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from tp_fixtures import set_run_config

from training_pipeline import steps
from training_pipeline.cli import main
from training_pipeline.gate import EXIT_REFUSED, EXIT_SKIPPED, GateStatus
from training_pipeline.registry import (
    PROMOTION_TAG_PREFIX,
    alias_version,
    make_client,
    read_log,
)
from training_pipeline.rundir import RunDir
from training_pipeline.settings import GateMode, TrainingSettings

pytestmark = pytest.mark.integration

Registry = Callable[..., TrainingSettings]
FreshRun = Callable[[str], Path]

LENIENT_MINIMUMS = {"gate": {"minimums": {"roc_auc": 0.5, "top1_accuracy": 0.5}, "maximums": {}}}


def _client(settings: TrainingSettings) -> MlflowClient:
    return make_client(settings)


def _trail(settings: TrainingSettings) -> dict[str, str]:
    tags = _client(settings).get_registered_model(settings.model_name).tags
    return {k: v for k, v in tags.items() if k.startswith(PROMOTION_TAG_PREFIX)}


def _register_and_gate(
    run_dir: Path, settings: TrainingSettings, mode: GateMode | None = None
) -> tuple[str, steps.GateOutcome]:
    registration = steps.register(run_dir, settings)
    return registration["version"], steps.gate(run_dir, settings, mode=mode)


def test_first_model_becomes_champion_with_full_lineage(
    registry: Registry, fresh_run: FreshRun
) -> None:
    settings = registry()
    run_dir = fresh_run("good")
    registration = steps.register(run_dir, settings)
    assert registration["version"] == "1"
    client = _client(settings)
    run = client.get_run(registration["run_id"])
    manifest = json.loads((run_dir / RunDir.MANIFEST).read_text())
    tags = run.data.tags
    assert tags["data.training_set_hash"] == manifest["training_set_hash"]
    assert tags["data.window_start"] == manifest["window_start"] == "2024-01-01T00:00:00+00:00"
    assert tags["data.window_end"] == "2024-01-11T00:00:00+00:00"
    assert int(tags["data.n_rows"]) == manifest["n_rows"] == 4800
    assert int(tags["data.n_train"]) + int(tags["data.n_test"]) == 4800
    assert tags["features.service"] == "driver_ranking_v1"
    assert tags["features.refs"].split(",") == manifest["feature_refs"]
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True
    )
    assert tags["code.git_commit"] == (head.stdout.strip() if head.returncode == 0 else "unknown")
    config = json.loads(tags["config"])
    assert config["estimator"]["class_path"] == "sklearn.ensemble.HistGradientBoostingClassifier"
    params = run.data.params
    assert params["training_set_hash"] == manifest["training_set_hash"]
    assert params["hp.max_iter"] == "200" and params["seed"] == "42"
    metrics = run.data.metrics
    evaluation = json.loads((run_dir / RunDir.EVALUATION).read_text())["metrics"]
    assert metrics["roc_auc"] == pytest.approx(evaluation["roc_auc"])
    assert metrics["top1_accuracy"] == pytest.approx(evaluation["top1_accuracy"])
    assert metrics["model_size_bytes"] > 0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {
        "plots/roc_curve.png",
        "plots/calibration.png",
        "plots/permutation_importance.png",
    }
    version = client.get_model_version(settings.model_name, "1")
    assert version.tags["data.training_set_hash"] == manifest["training_set_hash"]
    assert version.run_id == run.info.run_id
    # the logged model: signature, input example, explicit pip requirements, predict_proba
    import mlflow.models

    info = mlflow.models.get_model_info(f"models:/{settings.model_name}/1")
    assert info.signature.inputs.input_names() == manifest["feature_columns"]
    assert info.flavors["python_function"]["predict_fn"] == "predict_proba"
    assert info.saved_input_example_info is not None
    # the format serving loads (skops, no code run on load) and the declared positive class
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    assert info.metadata == {"positive_class": "True"}
    reqs = mlflow.pyfunc.get_model_dependencies(f"models:/{settings.model_name}/1")
    requirements = Path(reqs).read_text()
    assert "scikit-learn==" in requirements and "skops==" in requirements

    outcome = steps.gate(run_dir, settings)
    assert outcome.status is GateStatus.PROMOTED
    assert "no champion yet" in outcome.message
    assert alias_version(client, settings.model_name, "champion") == "1"
    [record] = read_log(client, settings.model_name)
    assert (record.action, record.from_version, record.to_version) == ("gate", None, "1")
    assert record.metrics["roc_auc"] == pytest.approx(evaluation["roc_auc"])
    # registering the same run folder again (an Airflow retry) creates no second version
    assert steps.register(run_dir, settings)["reused"] is True
    assert len(client.search_model_versions(f"name='{settings.model_name}'")) == 1


def test_register_logs_the_monitoring_reference(
    registry: Registry, fresh_run: FreshRun, tmp_path: Path
) -> None:
    """The reference the monitoring service compares serving with: a seeded sample of the
    holdout with the model's out-of-sample score and the label, found from the model version
    through its run (the way the monitoring service resolves it)."""
    import mlflow.artifacts
    import pandas as pd

    from training_pipeline import reference
    from training_pipeline.steps import load_model

    settings = registry()
    run_dir = fresh_run("good")
    set_run_config(run_dir, {"evaluation": {"reference_max_rows": 700}})
    registration = steps.register(run_dir, settings)
    client = _client(settings)
    version = client.get_model_version(settings.model_name, registration["version"])
    assert version.tags[reference.PATH_TAG] == "reference/reference.parquet"
    assert version.tags[reference.ROWS_TAG] == "700"
    run = client.get_run(version.run_id)
    assert run.data.tags[reference.PATH_TAG] == "reference/reference.parquet"

    folder = Path(
        mlflow.artifacts.download_artifacts(
            run_id=version.run_id,
            artifact_path="reference",
            dst_path=str(tmp_path),
            tracking_uri=settings.tracking_uri,
        )
    )
    frame = pd.read_parquet(folder / "reference.parquet")
    manifest = json.loads((folder / "reference.json").read_text())
    trained = json.loads((run_dir / RunDir.TRAIN).read_text())
    columns = trained["feature_columns"]
    assert manifest["feature_columns"] == columns
    assert manifest["score_column"] == "score" and manifest["label_column"] == "trip_completed"
    assert manifest["source"] == "holdout" and manifest["rows"] == len(frame) == 700
    test_set = pd.read_parquet(run_dir / RunDir.TEST_SET)
    assert manifest["sampled_from"] == len(test_set) > 700
    assert list(frame.columns) == [*columns, "score", "trip_completed"]
    assert frame["trip_completed"].dtype == bool
    assert str(frame["avg_daily_trips"].dtype) == "int64"  # the types the model was trained on
    # every row is a holdout row, scored by the registered model (out of sample)
    model = load_model(RunDir(run_dir))
    expected = model.predict_proba(frame[columns])[:, 1]
    assert frame["score"].to_numpy() == pytest.approx(expected)
    keys = test_set[columns].round(12).astype(str).agg("|".join, axis=1)
    assert set(frame[columns].round(12).astype(str).agg("|".join, axis=1)) <= set(keys)
    # deterministic: the same run folder gives the same sample
    again = reference.reference_frame(
        model, test_set, columns, "trip_completed", 700, settings.estimator.seed
    )
    pd.testing.assert_frame_equal(again, frame)
    assert (
        manifest["content_hash"]
        == json.loads((run_dir / "reference" / "reference.json").read_text())["content_hash"]
    )


def test_a_worse_candidate_is_refused_in_every_mode_and_the_champion_stays(
    registry: Registry, fresh_run: FreshRun, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = registry()
    _, first = _register_and_gate(fresh_run("good"), settings)
    assert first.status is GateStatus.PROMOTED
    trail = _trail(settings)
    bad = fresh_run("crippled")
    version = steps.register(bad, settings)["version"]
    assert version == "2"

    dry = steps.gate(bad, settings, mode=GateMode.DRY_RUN)
    assert dry.status is GateStatus.SKIPPED and dry.exit_code == EXIT_SKIPPED
    assert "dry run, nothing moved (would refuse)" in dry.message
    assert "roc_auc" in dry.message and "< minimum" in dry.message

    disabled = steps.gate(bad, settings, mode=GateMode.DISABLED)
    assert disabled.status is GateStatus.SKIPPED and disabled.decision is None
    assert "gate disabled" in disabled.message

    # enabled, through the CLI: exit code 3, the reason printed
    assert main(["gate", "--run-dir", str(bad)]) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "gate: refused (enabled)" in err and "[FAIL] minimum: roc_auc" in err

    client = _client(settings)
    assert alias_version(client, settings.model_name, "champion") == "1"
    assert client.get_model_version(settings.model_name, "2").aliases == []
    assert client.get_model_version(settings.model_name, "2").tags["gate.status"] == "refused"
    assert _trail(settings) == trail  # nothing moved, nothing logged
    gate_json = json.loads((bad / RunDir.GATE).read_text())
    assert gate_json["status"] == "refused" and gate_json["decision"]["passed"] is False


def test_regression_against_the_champion_on_the_same_holdout(
    registry: Registry, fresh_run: FreshRun, trained_runs: dict[str, Path]
) -> None:
    settings = registry()
    _register_and_gate(fresh_run("good"), settings)
    # passes the (lowered) absolute bounds, but regresses against the champion
    bad = fresh_run("crippled")
    set_run_config(bad, LENIENT_MINIMUMS)
    version, outcome = _register_and_gate(bad, settings)
    assert outcome.status is GateStatus.REFUSED
    assert outcome.decision is not None
    failed = [c for c in outcome.decision.checks if not c.passed]
    assert {c.kind for c in failed} == {"regression"}
    assert "regression: roc_auc" in outcome.message
    # the champion was scored on the candidate's holdout: identical to its own evaluation there
    champion_eval = json.loads((trained_runs["good"] / RunDir.EVALUATION).read_text())["metrics"]
    assert outcome.decision.champion_metrics is not None
    for metric in ("roc_auc", "top1_accuracy", "log_loss"):
        assert outcome.decision.champion_metrics[metric] == pytest.approx(champion_eval[metric])
    run_id = json.loads((bad / RunDir.REGISTRATION).read_text())["run_id"]
    logged = _client(settings).get_run(run_id).data.metrics
    assert logged["champion_roc_auc"] == pytest.approx(champion_eval["roc_auc"])
    assert alias_version(_client(settings), settings.model_name, "champion") == "1"

    # a tolerance wide enough lets the same candidate through
    tolerant = fresh_run("crippled")
    set_run_config(
        tolerant,
        {
            **LENIENT_MINIMUMS,
            "gate": {
                **LENIENT_MINIMUMS["gate"],
                "max_regression": {"roc_auc": 0.5, "top1_accuracy": 0.5},
            },
        },
    )
    version, outcome = _register_and_gate(tolerant, settings)
    assert outcome.status is GateStatus.PROMOTED, outcome.message
    assert alias_version(_client(settings), settings.model_name, "champion") == version


def test_challenger_policy_and_an_equal_candidate(registry: Registry, fresh_run: FreshRun) -> None:
    settings = registry()
    first = fresh_run("good")
    set_run_config(first, {"gate": {"promote_to": "challenger"}})
    _, outcome = _register_and_gate(first, settings)
    # first model on a fresh registry: champion, whatever the policy says
    assert outcome.status is GateStatus.PROMOTED and outcome.alias == "champion"
    second = fresh_run("good")
    set_run_config(second, {"gate": {"promote_to": "challenger"}})
    version, outcome = _register_and_gate(second, settings)
    # identical metrics: within tolerance, becomes the challenger; the champion stays
    assert outcome.status is GateStatus.PROMOTED and outcome.alias == "challenger"
    client = _client(settings)
    assert alias_version(client, settings.model_name, "challenger") == version == "2"
    assert alias_version(client, settings.model_name, "champion") == "1"


def test_promote_rollback_history_and_an_append_only_log(
    registry: Registry, fresh_run: FreshRun, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = registry()
    client = _client(settings)
    name = settings.model_name
    snapshots: list[dict[str, str]] = []

    def champion() -> str | None:
        return alias_version(client, name, "champion")

    def moved() -> None:
        trail = _trail(settings)
        if snapshots:
            previous = snapshots[-1]
            # never rewritten: every earlier record is still there, unchanged; one new record
            assert {k: trail[k] for k in previous} == previous
            assert len(trail) == len(previous) + 1
        snapshots.append(trail)

    _register_and_gate(fresh_run("good"), settings)
    moved()
    _register_and_gate(fresh_run("good"), settings)
    moved()
    assert champion() == "2"

    assert main(["promote", "1", "--reason", "manual: v2 misbehaves", "--actor", "alice"]) == 0
    moved()
    assert champion() == "1"
    assert main(["rollback", "--reason", "undo the manual promotion"]) == 0
    moved()
    assert champion() == "2"
    assert main(["rollback", "--reason", "back to the first champion"]) == 0
    moved()
    assert champion() == "1"
    capsys.readouterr()
    assert main(["rollback", "--reason", "nothing earlier"]) == 1
    assert "no earlier holder" in capsys.readouterr().err
    assert main(["promote", "1", "--reason", "again"]) == 1  # already champion: no move
    assert champion() == "1" and len(_trail(settings)) == 5

    records = read_log(client, name)
    assert [(r.seq, r.action, r.from_version, r.to_version) for r in records] == [
        (1, "gate", None, "1"),
        (2, "gate", "1", "2"),
        (3, "promote", "2", "1"),
        (4, "rollback", "1", "2"),
        (5, "rollback", "2", "1"),
    ]
    assert records[2].actor == "alice" and records[2].reason == "manual: v2 misbehaves"
    assert all(r.time and r.metrics.get("roc_auc") for r in records)

    assert main(["history"]) == 0
    out = capsys.readouterr().out
    assert "champion -> v1" in out
    for reason in ("manual: v2 misbehaves", "undo the manual promotion", "back to the first"):
        assert reason in out
    assert main(["history", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["aliases"] == {"champion": "1"} and len(payload["promotion_log"]) == 5


def test_rollback_refuses_when_the_alias_moved_outside_the_platform(
    registry: Registry, fresh_run: FreshRun, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = registry()
    _register_and_gate(fresh_run("good"), settings)
    _register_and_gate(fresh_run("good"), settings)
    _client(settings).set_registered_model_alias(settings.model_name, "champion", "1")
    assert main(["rollback", "--reason", "x"]) == 1
    assert "moved outside the platform" in capsys.readouterr().err
