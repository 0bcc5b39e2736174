"""Each scenario does what it promises, and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from example_project.oracle import oracle_metrics_of
from example_project.world.completion import (
    CONCEPT_DRIFT_WEIGHTS,
    FEATURES,
    NORMAL_WEIGHTS,
    completion_probability,
)
from example_project.world.config import DirtyRates, ExampleSourceConfig
from example_project.world.generator import ExampleData, generate
from mlops_common.metrics import roc_auc, top1_accuracy

Factory = Callable[..., ExampleSourceConfig]
START = datetime(2024, 3, 1, tzinfo=UTC)
DRIFT = datetime(2024, 3, 15, tzinfo=UTC)
END = datetime(2024, 3, 29, tzinfo=UTC)
KEY = ["driver_id", "event_timestamp", "created"]


def _world(scenario: str, **overrides: object) -> ExampleData:
    values: dict[str, object] = {
        "n_drivers": 500,
        "start": START,
        "end": END,
        "bookings_per_hour": 30,
        "scenario": scenario,
        "drift_start": DRIFT,
    }
    values.update(overrides)
    return generate(ExampleSourceConfig.model_validate(values))


@pytest.fixture(scope="module")
def normal() -> ExampleData:
    return _world("normal")


@pytest.fixture(scope="module")
def covariate() -> ExampleData:
    return _world("covariate_drift")


@pytest.fixture(scope="module")
def concept() -> ExampleData:
    return _world("concept_drift")


def _before(frame: pd.DataFrame, column: str = "event_timestamp") -> pd.DataFrame:
    return frame[frame[column] < DRIFT].reset_index(drop=True)


def _after(frame: pd.DataFrame, column: str = "event_timestamp") -> pd.DataFrame:
    return frame[frame[column] >= DRIFT].reset_index(drop=True)


def _with_features(data: ExampleData, frame: pd.DataFrame) -> pd.DataFrame:
    stats = data.driver_hourly_stats[["driver_id", "event_timestamp", *FEATURES]]
    hours = frame.assign(event_timestamp=frame["event_timestamp"].dt.floor("h"))
    return hours.merge(stats, on=["driver_id", "event_timestamp"], how="left")


@pytest.mark.parametrize("scenario", ["covariate", "concept"])
def test_drift_scenarios_equal_normal_before_drift_start(
    request: pytest.FixtureRequest, normal: ExampleData, scenario: str
) -> None:
    drifted: ExampleData = request.getfixturevalue(scenario)
    for table, frame in drifted.tables().items():
        pd.testing.assert_frame_equal(_before(frame), _before(normal.tables()[table]))
        assert not _after(frame).empty, table


def test_covariate_drift_moves_feature_distributions(
    normal: ExampleData, covariate: ExampleData
) -> None:
    before = _before(covariate.driver_hourly_stats)
    after = _after(covariate.driver_hourly_stats)
    same_period_normal = _after(normal.driver_hourly_stats)
    assert after["conv_rate"].mean() < before["conv_rate"].mean() - 0.1
    assert after["avg_daily_trips"].mean() > 1.4 * before["avg_daily_trips"].mean()
    assert after["cancel_rate"].mean() > before["cancel_rate"].mean() + 0.01
    # and it is the scenario, not the season: normal stays put over the same period
    assert abs(same_period_normal["conv_rate"].mean() - before["conv_rate"].mean()) < 0.02
    # untouched features keep their distribution
    pd.testing.assert_series_equal(after["rating"], same_period_normal["rating"])


def test_covariate_drift_keeps_the_label_model(covariate: ExampleData) -> None:
    candidates = _with_features(covariate, _after(covariate.booking_candidates))
    expected = completion_probability(candidates[list(FEATURES)], NORMAL_WEIGHTS)
    np.testing.assert_array_equal(candidates["true_p"].to_numpy(), expected)


def test_concept_drift_changes_the_model_but_not_the_features(
    normal: ExampleData, concept: ExampleData
) -> None:
    pd.testing.assert_frame_equal(concept.driver_hourly_stats, normal.driver_hourly_stats)
    after = _with_features(concept, _after(concept.booking_candidates))
    np.testing.assert_array_equal(
        after["true_p"].to_numpy(),
        completion_probability(after[list(FEATURES)], CONCEPT_DRIFT_WEIGHTS),
    )
    normal_after = _after(normal.booking_candidates)
    assert (after["true_p"] - normal_after["true_p"]).abs().mean() > 0.05
    metrics = oracle_metrics_of(concept)
    assert set(metrics) == {"all", "pre_drift", "post_drift"}
    assert metrics["post_drift"].oracle_roc_auc > 0.75


def test_concept_drift_makes_a_stale_model_measurably_worse(concept: ExampleData) -> None:
    """A logistic regression fitted before the drift scores worse after it than one refitted
    after it (on the same number of labels), on held-out post-drift bookings."""
    bookings = _with_features(concept, concept.bookings)
    pre = bookings[bookings["event_timestamp"] < DRIFT]
    post = bookings[bookings["event_timestamp"] >= DRIFT]
    post_train, post_test = post.iloc[: len(post) // 2], post.iloc[len(post) // 2 :]
    pre_train = pre.iloc[-len(post_train) :]

    def fit(frame: pd.DataFrame) -> LogisticRegression:
        x = np.log1p(frame[list(FEATURES)])
        return LogisticRegression(max_iter=1000).fit(x, frame["trip_completed"])

    x_test = np.log1p(post_test[list(FEATURES)])
    stale = fit(pre_train).predict_proba(x_test)[:, 1]
    fresh = fit(post_train).predict_proba(x_test)[:, 1]
    y = post_test["trip_completed"]
    assert roc_auc(y, fresh) > roc_auc(y, stale) + 0.05

    candidates = _with_features(concept, concept.booking_candidates)
    held_out = candidates[candidates["booking_id"].isin(post_test["booking_id"])]
    x_cand = np.log1p(held_out[list(FEATURES)])
    assert top1_accuracy(held_out, fit(post_train).predict_proba(x_cand)[:, 1]) > (
        top1_accuracy(held_out, fit(pre_train).predict_proba(x_cand)[:, 1]) + 0.03
    )


# ------------------------------------------------------------------------------------------ dirty


@pytest.fixture(scope="module")
def dirty_pair() -> tuple[ExampleData, ExampleData]:
    config = ExampleSourceConfig(
        seed=3,
        n_drivers=200,
        start=START,
        end=datetime(2024, 3, 4, tzinfo=UTC),
        bookings_per_hour=10,
        dirty_rates=DirtyRates(null=0.02, out_of_range=0.02, duplicate=0.01, late=0.01),
    )
    dirty = ExampleSourceConfig.model_validate({**config.model_dump(), "scenario": "dirty"})
    return generate(dirty), generate(config)


def _drop_keys(frame: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    marked = frame.merge(keys[KEY].assign(_dirty=True), on=KEY, how="left")
    return marked[marked["_dirty"].isna()].drop(columns="_dirty").reset_index(drop=True)


def _out_of_range(stats: pd.DataFrame) -> pd.DataFrame:
    checks = {
        "conv_rate": ~stats["conv_rate"].between(0, 1),
        "acc_rate": ~stats["acc_rate"].between(0, 1),
        "cancel_rate": ~stats["cancel_rate"].between(0, 1),
        "rating": ~stats["rating"].between(1, 5),
        "avg_daily_trips": stats["avg_daily_trips"] < 0,
    }
    rows = []
    for column, bad in checks.items():
        bad = bad & stats[column].notna()
        rows.append(stats.loc[bad, KEY].assign(column=column))
    return pd.concat(rows, ignore_index=True)


def _keyset(frame: pd.DataFrame, extra: tuple[str, ...] = ()) -> set[tuple[object, ...]]:
    return set(frame[[*KEY, *extra]].itertuples(index=False, name=None))


def test_dirty_manifest_matches_the_injected_defects(
    dirty_pair: tuple[ExampleData, ExampleData],
) -> None:
    dirty, _ = dirty_pair
    stats, manifest = dirty.driver_hourly_stats, dirty.dirty_manifest
    kinds = manifest["defect"].value_counts()
    assert set(kinds.index) == {"null_value", "out_of_range", "duplicate", "late"}
    assert (kinds > 10).all()
    assert not manifest.duplicated(KEY).any()
    assert stats.duplicated(KEY).sum() == 0  # every dirty row is addressable by its key

    nulls = stats.melt(id_vars=KEY, value_vars=list(FEATURES), var_name="column")
    nulls = nulls[nulls["value"].isna()]
    assert _keyset(nulls, ("column",)) == _keyset(
        manifest[manifest["defect"] == "null_value"], ("column",)
    )

    assert _keyset(_out_of_range(stats), ("column",)) == _keyset(
        manifest[manifest["defect"] == "out_of_range"], ("column",)
    )

    age = stats["created"].dt.floor("h") - stats["event_timestamp"]
    late = stats[age >= pd.Timedelta(hours=2)]
    assert _keyset(late) == _keyset(manifest[manifest["defect"] == "late"])
    assert (age[age > pd.Timedelta(0)] >= pd.Timedelta(hours=2)).all()

    on_time = stats[age == pd.Timedelta(0)].sort_values("created")
    repeats = on_time[on_time.duplicated(["driver_id", "event_timestamp"], keep="first")]
    assert _keyset(repeats) == _keyset(manifest[manifest["defect"] == "duplicate"])


def test_dirty_clean_rows_equal_normal(dirty_pair: tuple[ExampleData, ExampleData]) -> None:
    dirty, normal = dirty_pair
    manifest = dirty.dirty_manifest
    pd.testing.assert_frame_equal(
        _drop_keys(dirty.driver_hourly_stats, manifest),
        _drop_keys(normal.driver_hourly_stats, manifest),
        check_exact=True,
    )
    # null/out-of-range rows replace normal rows; duplicates and late rows are extra rows
    in_place = (manifest["defect"].isin(["null_value", "out_of_range"])).sum()
    extra = (manifest["defect"].isin(["duplicate", "late"])).sum()
    assert len(dirty.driver_hourly_stats) == len(normal.driver_hourly_stats) + extra
    assert len(_drop_keys(normal.driver_hourly_stats, manifest)) == (
        len(normal.driver_hourly_stats) - in_place
    )
    # repeated deliveries carry the clean values
    repeats = manifest[manifest["defect"].isin(["duplicate", "late"])]
    repeated = dirty.driver_hourly_stats.merge(repeats[KEY], on=KEY)
    originals = normal.driver_hourly_stats.drop(columns="created").merge(
        repeated[["driver_id", "event_timestamp"]], on=["driver_id", "event_timestamp"]
    )
    assert len(originals) > 0
    check = repeated.merge(originals, on=["driver_id", "event_timestamp"], suffixes=("", "_n"))
    for column in FEATURES:
        assert (check[column] == check[f"{column}_n"]).all()
    # labels come from the true values: bookings are those of normal
    for table in ("bookings", "booking_candidates"):
        pd.testing.assert_frame_equal(dirty.tables()[table], normal.tables()[table])


def test_dirty_rates_are_configurable(small_config: Callable[..., ExampleSourceConfig]) -> None:
    zero = DirtyRates(null=0, out_of_range=0, duplicate=0, late=0)
    clean = generate(small_config(scenario="dirty", dirty_rates=zero))
    assert clean.dirty_manifest.empty
    pd.testing.assert_frame_equal(
        clean.driver_hourly_stats, generate(small_config()).driver_hourly_stats
    )
    light = generate(small_config(scenario="dirty", dirty_rates=DirtyRates(late=0.01)))
    heavy = generate(small_config(scenario="dirty", dirty_rates=DirtyRates(late=0.1)))
    n_late = [(d.dirty_manifest["defect"] == "late").sum() for d in (light, heavy)]
    assert n_late[1] > 5 * n_late[0] > 0
    assert generate(small_config()).dirty_manifest.empty
