"""Time-based splitting: train on the past, test on the most recent slice, never random."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training_pipeline.settings import SplitConfig
from training_pipeline.split import SplitError, time_split


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 10 * 24 * 3600, n), unit="s"
    )
    # shuffled on purpose: the split must not depend on row order
    return pd.DataFrame({"event_timestamp": ts, "x": rng.random(n), "id": np.arange(n)})


def test_every_training_row_precedes_every_test_row() -> None:
    frame = _frame(1000)
    split = time_split(frame, "event_timestamp", SplitConfig(test_fraction=0.2, min_test_rows=1))
    assert split.train["event_timestamp"].max() < split.cutoff
    assert split.test["event_timestamp"].min() >= split.cutoff
    assert len(split.train) + len(split.test) == len(frame)
    assert len(split.test) == 200
    assert set(split.train["id"]) | set(split.test["id"]) == set(frame["id"])


def test_split_is_deterministic_and_independent_of_row_order() -> None:
    frame = _frame(500)
    cfg = SplitConfig(test_fraction=0.25, min_test_rows=1)
    a = time_split(frame, "event_timestamp", cfg)
    b = time_split(frame.sample(frac=1.0, random_state=3), "event_timestamp", cfg)
    assert a.cutoff == b.cutoff
    assert set(a.test["id"]) == set(b.test["id"])
    # the test slice is exactly the most recent rows, not a random sample
    most_recent = frame.sort_values("event_timestamp").tail(len(a.test))["id"]
    assert set(a.test["id"]) == set(most_recent)


def test_rows_sharing_the_cutoff_time_all_go_to_test() -> None:
    ts = pd.to_datetime(["2024-01-01T00:00Z"] * 5 + ["2024-01-02T00:00Z"] * 5, utc=True)
    frame = pd.DataFrame({"event_timestamp": ts, "id": range(10)})
    split = time_split(frame, "event_timestamp", SplitConfig(test_fraction=0.3, min_test_rows=1))
    assert len(split.test) == 5
    assert split.train["event_timestamp"].nunique() == 1


def test_test_days() -> None:
    frame = _frame(2000)
    split = time_split(frame, "event_timestamp", SplitConfig(test_days=2.0, min_test_rows=1))
    latest = frame["event_timestamp"].max()
    assert split.test["event_timestamp"].min() > latest - pd.Timedelta(days=2)
    assert split.train["event_timestamp"].max() <= latest - pd.Timedelta(days=2)


def test_errors_name_the_problem() -> None:
    with pytest.raises(SplitError, match="min_test_rows"):
        time_split(_frame(100), "event_timestamp", SplitConfig(test_fraction=0.1, min_test_rows=50))
    one_time = pd.DataFrame(
        {"event_timestamp": pd.to_datetime(["2024-01-01T00:00Z"] * 10, utc=True)}
    )
    with pytest.raises(SplitError, match="no training rows"):
        time_split(one_time, "event_timestamp", SplitConfig(min_test_rows=1))
