"""The generator: determinism, slicing, dtypes, ranges and the label mechanics."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from example_project.world.completion import FEATURES, NORMAL_WEIGHTS, completion_probability
from example_project.world.config import ExampleSourceConfig
from example_project.world.generator import ExampleData, generate
from mlops_common.sources import SCHEMAS

Factory = Callable[..., ExampleSourceConfig]
DRIFT = datetime(2024, 3, 2, 5, tzinfo=UTC)


def assert_same_data(a: ExampleData, b: ExampleData) -> None:
    for table, frame in a.tables().items():
        pd.testing.assert_frame_equal(frame, b.tables()[table], check_exact=True)
    pd.testing.assert_frame_equal(a.dirty_manifest, b.dirty_manifest, check_exact=True)


def test_same_seed_same_data(small_config: Factory) -> None:
    assert_same_data(generate(small_config()), generate(small_config()))


def test_different_seed_different_data(small_config: Factory) -> None:
    a, b = generate(small_config(seed=1)), generate(small_config(seed=2))
    for column in FEATURES:
        assert not np.array_equal(
            a.driver_hourly_stats[column].to_numpy(), b.driver_hourly_stats[column].to_numpy()
        )
    assert not np.array_equal(a.bookings["driver_id"], b.bookings["driver_id"])
    assert not set(a.bookings["booking_id"]) & set(b.bookings["booking_id"])


@pytest.mark.parametrize(
    ("scenario", "drift"),
    [("normal", None), ("covariate_drift", DRIFT), ("concept_drift", DRIFT), ("dirty", None)],
)
def test_slices_concatenate_to_the_whole_period(
    small_config: Factory, scenario: str, drift: datetime | None
) -> None:
    whole_config = small_config(scenario=scenario, drift_start=drift)
    whole = generate(whole_config)
    cuts = [whole_config.start + timedelta(hours=h) for h in (0, 1, 8, 29, 30, 48)]
    slices = [generate(whole_config.with_period(a, b)) for a, b in pairwise(cuts)]
    for table, frame in whole.tables().items():
        glued = pd.concat([s.tables()[table] for s in slices], ignore_index=True)
        pd.testing.assert_frame_equal(glued, frame, check_exact=True)
    glued_manifest = pd.concat([s.dirty_manifest for s in slices], ignore_index=True)
    pd.testing.assert_frame_equal(glued_manifest, whole.dirty_manifest, check_exact=True)


def test_a_drivers_values_do_not_depend_on_the_population_size(small_config: Factory) -> None:
    few = generate(small_config(n_drivers=40)).driver_hourly_stats
    many = generate(small_config(n_drivers=120)).driver_hourly_stats
    subset = many[many["driver_id"] < 1001 + 40].reset_index(drop=True)
    pd.testing.assert_frame_equal(few, subset, check_exact=True)


def test_dtypes_follow_the_schemas(small_config: Factory) -> None:
    data = generate(small_config(scenario="dirty"))
    for table, frame in data.tables().items():
        assert {c: str(t) for c, t in frame.dtypes.items()} == SCHEMAS[table].columns
        assert isinstance(frame.index, pd.RangeIndex)
    assert all(isinstance(v, str) for v in data.bookings["booking_id"])


def test_driver_stats_ranges_and_shape(small_config: Factory) -> None:
    config = small_config()
    stats = generate(config).driver_hourly_stats
    assert len(stats) == config.n_drivers * config.n_hours
    assert not stats.isna().any().any()
    assert not stats.duplicated(["driver_id", "event_timestamp"]).any()
    assert stats["driver_id"].between(1001, 1000 + config.n_drivers).all()
    for column in ("conv_rate", "acc_rate", "cancel_rate"):
        assert stats[column].between(0.0, 1.0).all()
    assert stats["rating"].between(1.0, 5.0).all()
    assert (stats["avg_daily_trips"] >= 0).all()
    assert (stats["event_timestamp"] == stats["event_timestamp"].dt.floor("h")).all()
    assert stats["event_timestamp"].min() == config.start
    assert stats["event_timestamp"].max() == config.end - timedelta(hours=1)
    lag = stats["created"] - stats["event_timestamp"]
    assert (lag >= timedelta(0)).all() and (lag < timedelta(minutes=21)).all()
    # realistic spread, not constants
    assert 0.4 < stats["conv_rate"].mean() < 0.6 and stats["conv_rate"].std() > 0.1
    assert 8 < stats["avg_daily_trips"].mean() < 20
    assert 4.0 < stats["rating"].mean() < 4.9


def test_hourly_values_vary_smoothly_with_a_daily_cycle(small_config: Factory) -> None:
    config = small_config(n_drivers=300, end=datetime(2024, 3, 15, tzinfo=UTC), bookings_per_hour=0)
    stats = generate(config).driver_hourly_stats
    per_driver = stats.groupby("driver_id")["avg_daily_trips"]
    # most of the variance is between drivers (baselines), some within a driver over time
    between = per_driver.mean().var()
    within = per_driver.var().mean()
    assert between > within > 0


def test_bookings_and_candidates(small_config: Factory) -> None:
    config = small_config()
    data = generate(config)
    bookings, candidates = data.bookings, data.booking_candidates
    k = config.candidates_per_booking
    assert len(bookings) == config.bookings_per_hour * config.n_hours
    assert bookings["booking_id"].is_unique
    assert len(candidates) == len(bookings) * k
    hours = bookings["event_timestamp"].dt.floor("h")
    assert hours.value_counts().eq(config.bookings_per_hour).all()
    assert (bookings["event_timestamp"] > hours).all()
    assert bookings["event_timestamp"].is_monotonic_increasing

    groups = candidates.groupby("booking_id", sort=False)
    assert groups["driver_id"].nunique().eq(k).all()
    assert groups["is_assigned"].sum().eq(1).all()
    assert sorted(candidates["position"].unique()) == list(range(k))
    assert candidates["true_p"].between(0.0, 1.0).all()

    assigned = candidates[candidates["is_assigned"]].reset_index(drop=True)
    assert assigned["booking_id"].tolist() == bookings["booking_id"].tolist()
    assert (assigned["driver_id"].to_numpy() == bookings["driver_id"].to_numpy()).all()
    assert (assigned["true_p"].to_numpy() == bookings["true_p"].to_numpy()).all()
    assert (
        assigned["completed_if_assigned"].to_numpy() == bookings["trip_completed"].to_numpy()
    ).all()
    ts = candidates.merge(bookings[["booking_id", "event_timestamp"]], on="booking_id")
    assert (ts["event_timestamp_x"] == ts["event_timestamp_y"]).all()


def test_historical_policy_assigns_a_uniformly_random_candidate(small_config: Factory) -> None:
    config = small_config(
        n_drivers=200, end=datetime(2024, 3, 11, tzinfo=UTC), bookings_per_hour=40
    )
    candidates = generate(config).booking_candidates
    assigned = candidates[candidates["is_assigned"]]
    share = assigned["position"].value_counts(normalize=True)
    assert share.between(0.2 - 0.015, 0.2 + 0.015).all(), share
    # unbiased: the assigned drivers' true_p is distributed like every candidate's
    assert abs(assigned["true_p"].mean() - candidates["true_p"].mean()) < 0.01


def test_true_p_is_the_model_on_the_point_in_time_features(small_config: Factory) -> None:
    data = generate(small_config())
    stats = data.driver_hourly_stats.sort_values("event_timestamp")
    candidates = data.booking_candidates.sort_values("event_timestamp")
    joined = pd.merge_asof(
        candidates,
        stats[["driver_id", "event_timestamp", *FEATURES]].rename(
            columns={"event_timestamp": "feature_ts"}
        ),
        left_on="event_timestamp",
        right_on="feature_ts",
        by="driver_id",
        direction="backward",
    )
    assert joined["feature_ts"].notna().all()
    expected = completion_probability(joined[list(FEATURES)], NORMAL_WEIGHTS)
    np.testing.assert_array_equal(joined["true_p"].to_numpy(), expected)
    completed = joined["completed_if_assigned"].mean()
    assert abs(completed - joined["true_p"].mean()) < 0.02


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"start": datetime(2024, 3, 1, 0, 30, tzinfo=UTC)}, "whole hour"),
        ({"end": datetime(2024, 3, 1, tzinfo=UTC)}, "must be after start"),
        ({"scenario": "concept_drift"}, "needs drift_start"),
        ({"scenario": "nonsense"}, "scenario"),
        ({"n_drivers": 3}, "must not exceed n_drivers"),
        ({"n_drivers": 0}, "n_drivers"),
        ({"start": datetime(1969, 12, 31, tzinfo=UTC)}, "1970"),
    ],
)
def test_bad_config_is_refused(
    small_config: Factory, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        small_config(**overrides)


def test_naive_times_are_utc(small_config: Factory) -> None:
    config = small_config(start=datetime(2024, 3, 1), end=datetime(2024, 3, 1, 2))
    assert config.start == datetime(2024, 3, 1, tzinfo=UTC)
    assert config.n_hours == 2
