"""Transform: the valid rows of an interval become rows of the feature view's offline table.

- re-deliveries are de-duplicated: per ``(driver_id, event_timestamp)`` the row with the latest
  ``created`` wins (a correction replaces the earlier value; Feast would pick the same row);
- columns and dtypes become exactly ``feature_store.OFFLINE_COLUMNS`` (the contract every file of
  the offline table follows, batch and stream alike), sorted by event time and driver.

The source already delivers the model's features as they are; this is where derived features
would be computed.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from data_pipeline.batch import staging
from data_pipeline.feature_store import OFFLINE_COLUMNS
from data_pipeline.settings import DataPipelineSettings
from mlops_common.intervals import Interval
from mlops_common.sources import TableSchema

#: the offline table's files: columns and dtypes (``conform`` casts a frame to them)
OFFLINE_SCHEMA = TableSchema(
    name="offline driver_hourly_stats",
    columns=OFFLINE_COLUMNS,
    primary_key=("driver_id", "event_timestamp", "created"),
    slice_column="created",
    sort_key=("event_timestamp", "driver_id", "created"),
)


def to_offline_rows(valid: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The offline rows of validated source rows, and how many re-deliveries were dropped."""
    ordered = valid.sort_values(["driver_id", "event_timestamp", "created"], kind="stable")
    latest = ordered.drop_duplicates(["driver_id", "event_timestamp"], keep="last")
    out = OFFLINE_SCHEMA.conform(latest)
    out = out.sort_values(["event_timestamp", "driver_id"], kind="stable", ignore_index=True)
    return out, len(valid) - len(latest)


def transform(settings: DataPipelineSettings, interval: Interval) -> dict[str, Any]:
    began = time.perf_counter()
    valid = staging.read_input(settings, interval, staging.VALID, "validate")
    features, dropped = to_offline_rows(valid)
    output = staging.stage_output(settings, interval, "transform", features, staging.FEATURES)
    summary: dict[str, Any] = {
        "step": "transform",
        "interval": {"start": interval.start.isoformat(), "end": interval.end.isoformat()},
        "rows_in": len(valid),
        "redeliveries_dropped": dropped,
        "rows": len(features),
        "output": str(output),
        "seconds": round(time.perf_counter() - began, 3),
    }
    staging.write_json(summary, output.parent / "transform.json")
    return summary
