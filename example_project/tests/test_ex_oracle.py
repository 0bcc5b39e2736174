"""Evaluation helpers and the oracle's numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from data_pipeline.example_source import (
    FEATURES,
    ExampleData,
    ExampleSourceConfig,
    generate,
    oracle_metrics,
    oracle_metrics_of,
    roc_auc,
    top1_accuracy,
)


@pytest.fixture(scope="module")
def two_weeks() -> ExampleData:
    """The default world (1000 drivers, 30 bookings an hour) over 14 days: ~10k bookings."""
    return generate(
        ExampleSourceConfig(
            start=datetime(2024, 1, 1, tzinfo=UTC), end=datetime(2024, 1, 15, tzinfo=UTC)
        )
    )


def test_roc_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.3
    scores = np.round(rng.random(500) + 0.3 * y, 1)  # many ties
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_roc_auc_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="both positive and negative"):
        roc_auc([True, True], [0.1, 0.2])
    with pytest.raises(ValueError, match="equal length"):
        roc_auc([True, False], [0.1])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([True, False], [0.1, np.nan])


def test_top1_accuracy_picks_the_highest_score_per_booking() -> None:
    candidates = pd.DataFrame(
        {
            "booking_id": ["a", "a", "a", "b", "b", "c", "c"],
            "position": [0, 1, 2, 0, 1, 0, 1],
            "completed_if_assigned": [False, True, False, True, False, False, True],
        }
    )
    # a: picks position 1 (True); b: picks position 1 (False); c: tie -> position 0 (False)
    assert top1_accuracy(candidates, [0.1, 0.9, 0.5, 0.2, 0.3, 0.5, 0.5]) == pytest.approx(1 / 3)
    assert top1_accuracy(candidates, pd.Series([0.0, 1, 0, 1, 0, 0, 1], index=range(10, 17))) == 1.0
    with pytest.raises(ValueError, match="7 candidate rows"):
        top1_accuracy(candidates, [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        top1_accuracy(candidates, [np.nan] * 7)
    with pytest.raises(ValueError, match="completed_if_assigned"):
        top1_accuracy(candidates.drop(columns="completed_if_assigned"), [0.0] * 7)


def test_oracle_metrics_are_in_the_documented_ranges(two_weeks: ExampleData) -> None:
    m = oracle_metrics(two_weeks.bookings, two_weeks.booking_candidates)
    assert m.n_bookings == 14 * 24 * 30
    assert 0.6 <= m.base_rate <= 0.8
    assert 0.75 <= m.oracle_roc_auc <= 0.85
    assert abs(m.random_roc_auc - 0.5) < 0.03
    assert m.oracle_top1_accuracy > m.random_top1_accuracy + 0.1
    assert abs(m.random_top1_accuracy - m.base_rate) < 0.03
    assert m.oracle_top1_expected >= m.oracle_top1_accuracy - 0.02
    assert abs(m.random_top1_expected - m.base_rate) < 0.02
    assert set(oracle_metrics_of(two_weeks)) == {"all"}


def _as_of_features(data: ExampleData, frame: pd.DataFrame) -> pd.DataFrame:
    stats = data.driver_hourly_stats[["driver_id", "event_timestamp", *FEATURES]]
    hours = frame.assign(event_timestamp=frame["event_timestamp"].dt.floor("h"))
    joined = hours.merge(stats, on=["driver_id", "event_timestamp"], how="left")
    assert len(joined) == len(frame)
    return joined


def test_a_model_can_learn_close_to_the_oracle(two_weeks: ExampleData) -> None:
    """~10k labelled bookings are enough for a plain logistic regression to get near the oracle,
    and its ranking beats random on the candidate sets."""
    bookings = _as_of_features(two_weeks, two_weeks.bookings)
    train, test = bookings.iloc[:7000], bookings.iloc[7000:]
    x_train = np.log1p(train[list(FEATURES)])
    model = LogisticRegression(max_iter=1000).fit(x_train, train["trip_completed"])
    scores = model.predict_proba(np.log1p(test[list(FEATURES)]))[:, 1]
    learned = roc_auc(test["trip_completed"], scores)
    oracle = roc_auc(test["trip_completed"], test["true_p"])
    assert oracle - 0.03 < learned <= oracle + 0.01

    candidates = _as_of_features(two_weeks, two_weeks.booking_candidates)
    held_out = candidates[candidates["booking_id"].isin(test["booking_id"])]
    model_top1 = top1_accuracy(
        held_out, model.predict_proba(np.log1p(held_out[list(FEATURES)]))[:, 1]
    )
    oracle_top1 = top1_accuracy(held_out, held_out["true_p"])
    assert held_out["completed_if_assigned"].mean() + 0.1 < model_top1 <= oracle_top1 + 0.02
