"""Test helpers of the training pipeline tests (imported by conftest.py and test modules).

``GeneratedFeatures`` is a test-only stand-in for the Feast feature service: an as-of join of the
generator's hourly driver statistics at each booking's time — what Feast's point-in-time join
returns for this data (data_pipeline/docs/example_data.md). The Feast path itself is exercised
against the real feature store in test_tp_feast_integration.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from example_project.world.completion import FEATURES
from example_project.world.config import ExampleSourceConfig
from example_project.world.generator import ExampleData, generate
from training_pipeline.settings import TrainingSettings

SMALL_START = datetime(2024, 1, 1, tzinfo=UTC)
SMALL_END = datetime(2024, 1, 11, tzinfo=UTC)


class GeneratedFeatures:
    """The generator's driver statistics as a ``FeatureSource`` (test fixture, not Feast):
    for each entity row, the latest statistics at or before its timestamp (latest ``created``
    wins for a re-delivered hour)."""

    feature_service = "driver_ranking_v1"

    def __init__(self, stats: pd.DataFrame, ttl_hours: float = 2.0) -> None:
        latest = stats.sort_values("created").drop_duplicates(
            ["driver_id", "event_timestamp"], keep="last"
        )
        self._stats = latest.sort_values("event_timestamp")[
            ["driver_id", "event_timestamp", *FEATURES]
        ].rename(columns={"event_timestamp": "_feature_ts"})
        self._ttl = pd.Timedelta(hours=ttl_hours)
        self.calls = 0

    @property
    def feature_refs(self) -> list[str]:
        return [f"driver_hourly_stats:{f}" for f in FEATURES]

    def historical_features(self, entity_df: pd.DataFrame) -> pd.DataFrame:
        self.calls += 1
        rows = entity_df.sort_values("event_timestamp")
        joined = pd.merge_asof(
            rows,
            self._stats,
            left_on="event_timestamp",
            right_on="_feature_ts",
            by="driver_id",
            direction="backward",
            tolerance=self._ttl,
        )
        # Feast returns rows in its own order: so do we
        return joined.drop(columns="_feature_ts").sample(frac=1.0, random_state=0)


class GeneratedLabels:
    """The generator's bookings and candidate sets as a ``LabelSource``."""

    def __init__(self, data: ExampleData) -> None:
        self.data = data

    def labelled_events(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        b = self.data.bookings
        return b[(b["event_timestamp"] >= start) & (b["event_timestamp"] < end)]

    def candidates(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        c = self.data.booking_candidates
        return c[(c["event_timestamp"] >= start) & (c["event_timestamp"] < end)]


@dataclass
class World:
    data: ExampleData
    labels: GeneratedLabels
    features: GeneratedFeatures

    def window(self) -> dict[str, datetime]:
        """The generated interval, as the training window's ``start`` and ``end``."""
        config = self.data.config
        return {"start": config.start, "end": config.end}


def make_world(**config: Any) -> World:
    data = generate(ExampleSourceConfig.model_validate(config))
    return World(data, GeneratedLabels(data), GeneratedFeatures(data.driver_hourly_stats))


def small_settings(world: World, **updates: Any) -> TrainingSettings:
    """Settings for a world: its whole period as the window, validation sized for it."""
    values: dict[str, Any] = {
        "window": world.window(),
        "validation": {"min_rows": 500},
    }
    values.update(updates)
    return TrainingSettings(**values)


CRIPPLED: dict[str, Any] = {
    "estimator": {
        "hyperparameters": {"max_iter": 1, "max_depth": 1, "learning_rate": 0.01},
    }
}


def set_run_config(run_dir: Path, overrides: dict[str, Any]) -> None:
    """Change a run folder's frozen run configuration (as if the run had been built with it)."""
    target = run_dir / "settings.json"
    frozen = TrainingSettings().with_run_config(json.loads(target.read_text()))
    target.write_text(json.dumps(frozen.with_overrides(overrides).run_config()))
