"""Materialize: load the interval's latest feature values into the online store.

Feast materializes ``driver_hourly_stats`` over the event-time window
``[start - validation_max_lateness, end)``: the rows delivered in the interval have event times in
it (older rows were quarantined as late). Per driver the latest row of the window is written
(``created`` breaks ties).

The window's end is extended to the newest event in the offline store when that is later (a run
of an old interval after newer ones: a backfill, a manual re-run): the SQLite online store
overwrites unconditionally, so materializing only the old window would put older values online
than those already there. (The Redis store keeps a value only when it is newer than the one it
holds; there the extension changes nothing.)

Rows written = drivers with a row in the window (counted from the offline store, since Feast does
not report it); ``offline_rows`` = the offline rows of the window Feast read them from.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as ds

from data_pipeline.feature_store import (
    FEATURE_VIEW,
    JOIN_KEY,
    describe_online_store,
    feature_store,
    offline_table_dir,
)
from data_pipeline.settings import DataPipelineSettings
from mlops_common.intervals import Interval

_EPSILON = timedelta(microseconds=1)


def window(
    settings: DataPipelineSettings, interval: Interval, newest: datetime | None = None
) -> tuple[datetime, datetime]:
    """The event-time window materialized for ``interval`` (both ends inclusive, as Feast takes
    them); ``newest``: the newest event time in the offline store."""
    end = interval.end - _EPSILON
    if newest is not None and newest > end:
        end = newest
    return interval.start - settings.max_lateness, end


def newest_event(settings: DataPipelineSettings) -> datetime | None:
    """The newest ``event_timestamp`` in the offline store (None when it is empty)."""
    root = offline_table_dir(settings)
    if not root.is_dir():
        return None
    dataset = ds.dataset(root, format="parquet", partitioning="hive", exclude_invalid_files=True)
    column = dataset.to_table(columns=["event_timestamp"]).column("event_timestamp")
    newest = pc.max(column).as_py() if len(column) else None
    return newest if isinstance(newest, datetime) else None


def rows_in_window(
    settings: DataPipelineSettings, start: datetime, end: datetime
) -> tuple[int, int]:
    """Offline rows whose event time is in ``[start, end]``, and their distinct drivers."""
    root = offline_table_dir(settings)
    if not root.is_dir():
        return 0, 0
    dataset = ds.dataset(root, format="parquet", partitioning="hive", exclude_invalid_files=True)
    ts = ds.field("event_timestamp")
    table = dataset.to_table(columns=[JOIN_KEY], filter=(ts >= start) & (ts <= end))
    return table.num_rows, len(set(table.column(JOIN_KEY).to_pylist()))


def materialize(settings: DataPipelineSettings, interval: Interval) -> dict[str, Any]:
    began = time.perf_counter()
    start, end = window(settings, interval, newest_event(settings))
    store = feature_store(settings)
    if FEATURE_VIEW not in {view.name for view in store.list_feature_views()}:
        from data_pipeline.batch.errors import StepFailed

        raise StepFailed(
            f"feature view {FEATURE_VIEW} is not in the registry of project "
            f"{settings.mlops_feast_project}: run `data-pipeline apply` first"
        )
    t0 = time.perf_counter()
    store.materialize(start_date=start, end_date=end, feature_views=[FEATURE_VIEW])
    seconds = time.perf_counter() - t0
    offline_rows, rows = rows_in_window(settings, start, end)
    return {
        "step": "materialize",
        "interval": {"start": interval.start.isoformat(), "end": interval.end.isoformat()},
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "online_store": describe_online_store(settings),
        "offline_rows": offline_rows,
        "rows": rows,
        "materialize_seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds, 1) if seconds > 0 else None,
        "seconds": round(time.perf_counter() - began, 3),
    }
