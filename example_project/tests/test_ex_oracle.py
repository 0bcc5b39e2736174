"""The oracle's numbers, and that a model can learn close to them."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from example_project.oracle import oracle_metrics, oracle_metrics_of
from example_project.world.completion import FEATURES
from example_project.world.config import ExampleSourceConfig
from example_project.world.generator import ExampleData, generate
from mlops_common.metrics import roc_auc, top1_accuracy


@pytest.fixture(scope="module")
def two_weeks() -> ExampleData:
    """The default world (1000 drivers, 30 bookings an hour) over 14 days: ~10k bookings."""
    return generate(
        ExampleSourceConfig(
            start=datetime(2024, 1, 1, tzinfo=UTC), end=datetime(2024, 1, 15, tzinfo=UTC)
        )
    )


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
