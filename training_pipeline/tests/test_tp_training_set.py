"""Building and validating the training set (on the generator's data, fixture feature source)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tp_fixtures import World, small_settings

from example_project.world.completion import FEATURES
from example_project.world.generator import GROUND_TRUTH_COLUMNS
from training_pipeline import steps
from training_pipeline.cli import main
from training_pipeline.dataset import assemble_training_set, content_hash
from training_pipeline.rundir import RunDir
from training_pipeline.settings import DatasetConfig, ValidationConfig
from training_pipeline.validation import ValidationFailed, validate_training_set


def test_features_are_point_in_time_and_ground_truth_never_enters(small_world: World) -> None:
    data = small_world.data
    out = assemble_training_set(
        data.bookings, data.booking_candidates, small_world.features, DatasetConfig()
    )
    training = out.training_set
    assert out.feature_columns == list(FEATURES)
    assert not GROUND_TRUTH_COLUMNS & set(training.columns)
    assert len(training) == len(data.bookings)
    assert training["event_timestamp"].is_monotonic_increasing
    # every booking carries its driver's statistics of the booking's hour (the generator's truth)
    stats = data.driver_hourly_stats.set_index(["driver_id", "event_timestamp"])
    hours = training["event_timestamp"].dt.floor("h")
    expected = stats.loc[list(zip(training["driver_id"], hours, strict=True)), list(FEATURES)]
    pd.testing.assert_frame_equal(
        training[list(FEATURES)].reset_index(drop=True),
        expected.reset_index(drop=True),
        check_dtype=False,
    )
    cands = out.candidates
    assert len(cands) == len(data.booking_candidates)
    assert "true_p" not in cands.columns
    assert cands["completed_if_assigned"].dtype == bool  # evaluation only


def test_content_hash_depends_on_content_not_row_order(small_world: World) -> None:
    training = assemble_training_set(
        small_world.data.bookings, None, small_world.features, DatasetConfig()
    ).training_set
    h = content_hash(training, ["booking_id"])
    assert h.startswith("sha256:")
    assert content_hash(training.sample(frac=1.0, random_state=1), ["booking_id"]) == h
    changed = training.copy()
    changed.loc[5, "conv_rate"] += 0.0001
    assert content_hash(changed, ["booking_id"]) != h


def _validate(training: pd.DataFrame, candidates: pd.DataFrame, **cfg: object) -> list[str]:
    report = validate_training_set(
        training,
        candidates,
        list(FEATURES),
        DatasetConfig(),
        ValidationConfig.model_validate({"min_rows": 100, **cfg}),
    )
    return report.reasons


@pytest.fixture(scope="module")
def assembled(small_world: World) -> tuple[pd.DataFrame, pd.DataFrame]:
    data = small_world.data
    out = assemble_training_set(
        data.bookings, data.booking_candidates, small_world.features, DatasetConfig()
    )
    return out.training_set, out.candidates


def test_validation_passes_clean_data(assembled: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    assert _validate(*assembled) == []


def test_validation_names_every_problem(assembled: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    training, candidates = assembled
    assert any("min_rows" in r for r in _validate(training, candidates, min_rows=10**6))
    assert any("label_balance" in r for r in _validate(training, candidates, min_positive_rate=0.9))
    with_nulls = training.copy()
    with_nulls.loc[:9, "rating"] = float("nan")
    reasons = _validate(with_nulls, candidates)
    assert any("'rating'" in r and "null" in r for r in reasons), reasons
    leaked = training.assign(true_p=0.5)
    assert any("no_ground_truth" in r for r in _validate(leaked, candidates))
    orphan = _validate(training, candidates[candidates["booking_id"] != training["booking_id"][0]])
    assert any("no candidate set" in r for r in orphan)
    dup = training.copy()
    dup.loc[1, "booking_id"] = dup.loc[0, "booking_id"]
    assert any("booking_id" in r for r in _validate(dup, candidates))


def test_validate_step_and_cli_fail_with_the_reason(
    small_world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = small_settings(small_world, validation={"min_rows": 10**6})
    run_dir = tmp_path / "run"
    steps.build_training_set(
        run_dir, settings, labels=small_world.labels, features=small_world.features
    )
    with pytest.raises(ValidationFailed, match="min_rows"):
        steps.validate(run_dir, settings)
    report = json.loads((run_dir / RunDir.VALIDATION).read_text())
    assert report["passed"] is False
    # the CLI: exit 1, the reason on stderr (the run's frozen config says min_rows=10**6)
    assert main(["validate", "--run-dir", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "failed validation" in err and "min_rows" in err
    # train refuses a run whose validation failed
    with pytest.raises(ValidationFailed):
        steps.train(run_dir, settings)


def test_cli_reports_a_missing_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--run-dir", str(tmp_path / "nowhere")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_cli_rejects_bad_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["build-training-set", "--overrides", '{"model_name": "x"}'])
    assert exc.value.code == 2
    assert "may only change" in capsys.readouterr().err


class _StrictFeatures:
    """Refuses entity rows that share a join key and a timestamp, which Feast's file offline
    store would collapse (feast-dev/feast#6787); otherwise the fixture source."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.feature_service = "driver_ranking_v1"
        self.feature_refs = inner.feature_refs  # type: ignore[attr-defined]

    def historical_features(self, entity_df: pd.DataFrame) -> pd.DataFrame:
        assert not entity_df.duplicated(["driver_id", "event_timestamp"]).any()
        result: pd.DataFrame = self.inner.historical_features(entity_df)  # type: ignore[attr-defined]
        return result


def test_feature_requests_are_unique_per_entity_and_time(small_world: World) -> None:
    data = small_world.data
    shared = data.booking_candidates.duplicated(["driver_id", "event_timestamp"], keep=False)
    assert shared.sum() >= 2  # the same driver offered for two bookings in the same second
    out = assemble_training_set(
        data.bookings,
        data.booking_candidates,
        _StrictFeatures(small_world.features),
        DatasetConfig(),
    )
    assert not out.candidates[list(FEATURES)].isna().any().any()
    assert len(out.candidates) == len(data.booking_candidates)
