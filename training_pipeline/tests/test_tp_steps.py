"""The steps before the registry: train and evaluate outputs, reproducibility, estimator config."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tp_fixtures import World, small_settings

from training_pipeline import steps
from training_pipeline.estimators import EstimatorConfigError, build_estimator
from training_pipeline.rundir import RunDir
from training_pipeline.settings import EstimatorConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_train_and_evaluate_outputs(trained_runs: dict[str, Path]) -> None:
    rd = RunDir(trained_runs["good"])
    trained = json.loads(rd.file(RunDir.TRAIN).read_text())
    training = pd.read_parquet(rd.file(RunDir.TRAINING_SET))
    test_set = pd.read_parquet(rd.file(RunDir.TEST_SET))
    # time-based holdout: the most recent 20 % of the window
    assert trained["n_test"] == len(test_set) == pytest.approx(0.2 * len(training), abs=25)
    assert test_set["event_timestamp"].min() == pd.Timestamp(trained["cutoff"])
    assert training["event_timestamp"][
        ~training["booking_id"].isin(test_set["booking_id"])
    ].max() < pd.Timestamp(trained["cutoff"])
    assert trained["estimator_params"]["random_state"] == 42

    evaluation = json.loads(rd.file(RunDir.EVALUATION).read_text())
    m = evaluation["metrics"]
    counts = {"n_test", "n_test_candidates"}
    assert counts < set(steps.LOGGED_METRICS) <= set(m)
    for name in set(steps.LOGGED_METRICS) - counts:  # every other logged metric is a rate or a loss
        assert 0.0 <= m[name] <= 1.0, name
    assert m["roc_auc"] > 0.72  # learnable data (oracle about 0.79)
    assert m["top1_accuracy"] > m["random_top1_accuracy"] + 0.1
    assert m["n_test_candidates"] == 5 * m["n_test"]
    # candidate sets were fetched for the holdout bookings only, exactly
    candidates = pd.read_parquet(rd.file(RunDir.CANDIDATES))
    assert set(candidates["booking_id"]) == set(test_set["booking_id"])
    table = evaluation["reliability"]
    assert sum(row["count"] for row in table) == len(test_set)
    assert {row["feature"] for row in evaluation["permutation_importance"]} == set(
        trained["feature_columns"]
    )
    for plot in ("roc_curve.png", "calibration.png", "permutation_importance.png"):
        assert rd.file(RunDir.PLOTS).joinpath(plot).read_bytes()[:8] == PNG_MAGIC


def test_crippled_model_is_clearly_worse(trained_runs: dict[str, Path]) -> None:
    good = json.loads((trained_runs["good"] / RunDir.EVALUATION).read_text())["metrics"]
    bad = json.loads((trained_runs["crippled"] / RunDir.EVALUATION).read_text())["metrics"]
    assert bad["roc_auc"] < good["roc_auc"] - 0.05


def test_two_runs_on_the_same_data_and_config_are_identical(
    small_world: World, trained_runs: dict[str, Path], tmp_path: Path
) -> None:
    run_dir = tmp_path / "again"
    settings = small_settings(small_world)
    manifest = steps.build_training_set(
        run_dir, settings, labels=small_world.labels, features=small_world.features
    )
    steps.validate(run_dir, settings)
    steps.train(run_dir, settings)
    again = steps.evaluate(run_dir, settings)
    first_manifest = json.loads((trained_runs["good"] / RunDir.MANIFEST).read_text())
    first = json.loads((trained_runs["good"] / RunDir.EVALUATION).read_text())
    assert manifest["training_set_hash"] == first_manifest["training_set_hash"]
    assert manifest["candidates_hash"] == first_manifest["candidates_hash"]
    assert again["metrics"] == first["metrics"]
    assert again["permutation_importance"] == first["permutation_importance"]
    assert again["reliability"] == first["reliability"]


def test_estimator_configuration() -> None:
    lr = build_estimator(
        EstimatorConfig(
            class_path="sklearn.linear_model.LogisticRegression",
            hyperparameters={"C": 0.5},
            seed=7,
        )
    )
    assert lr.C == 0.5 and lr.random_state == 7
    with pytest.raises(EstimatorConfigError, match="no hyperparameters"):
        build_estimator(EstimatorConfig(hyperparameters={"not_a_param": 1}))
    with pytest.raises(EstimatorConfigError, match="not a scikit-learn classifier"):
        build_estimator(EstimatorConfig(class_path="sklearn.linear_model.LinearRegression"))
    with pytest.raises(EstimatorConfigError, match="no class"):
        build_estimator(EstimatorConfig(class_path="sklearn.ensemble.Nope"))


def test_compute_threads_limits_openmp() -> None:
    from threadpoolctl import threadpool_info

    from training_pipeline.estimators import compute_threads

    with compute_threads(1):
        openmp = [p for p in threadpool_info() if p["user_api"] == "openmp"]
        assert openmp and all(p["num_threads"] == 1 for p in openmp)
