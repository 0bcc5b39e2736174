"""Publish: write the interval's feature rows to the offline store (partitioned parquet).

Layout (``feature_store.OFFLINE_TABLE_PATH`` under the data directory)::

    offline/driver_hourly_stats/date=YYYY-MM-DD/batch.parquet

partitioned by the rows' *event* date (what historical retrieval and materialization filter on),
**one batch file per event date**. Publishing an interval, for every event date its rows may touch,
reads that date's file, drops the rows *delivered* (``created``) in the interval, adds the
interval's new rows and writes the file back atomically (temporary file + rename). So re-running
an interval — or the same hours as part of a longer backfill — replaces its rows and never
duplicates them, and a re-run that now quarantines a row removes it.

Why one file per date and not one per delivery hour: Feast's file offline store reads the whole
folder with Dask, one partition per file. Measured with 1000 drivers over 30 days (720,000 rows):
one file per delivery hour (720 files) took 10-19 s to materialize one hour and 323 s for a
historical retrieval of 1000 rows; one file per date (30 files) 0.9-1.5 s and 4.4 s.

The event dates an interval can touch are those of ``[start - max lateness, end + max future
skew]`` (validation quarantines anything outside). The stream consumer writes its own
``stream-*.parquet`` files into the same folders; publish never touches them. Publishes are
serialised by a lock file (``.publish.lock``) so two runs cannot lose each other's rows.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from data_pipeline.batch import staging
from data_pipeline.batch.transform import OFFLINE_SCHEMA
from data_pipeline.feature_store import OFFLINE_COLUMNS, offline_table_dir
from data_pipeline.settings import DataPipelineSettings
from mlops_common.intervals import Interval

BATCH_FILE = "batch.parquet"
LOCK_FILE = ".publish.lock"


def batch_file(root: Path, event_date: date | str) -> Path:
    return root / f"date={event_date}" / BATCH_FILE


def touched_dates(settings: DataPipelineSettings, interval: Interval) -> list[date]:
    """Event dates whose batch file can hold rows delivered in ``interval``."""
    first = (interval.start - settings.max_lateness).date()
    last = (interval.end + timedelta(seconds=settings.validation_max_future_seconds)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with (root / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def publish_frame(
    settings: DataPipelineSettings, interval: Interval, features: pd.DataFrame
) -> dict[str, Any]:
    """Make ``features`` (offline rows delivered in ``interval``) the interval's offline rows."""
    root = offline_table_dir(settings)
    missing = [c for c in OFFLINE_COLUMNS if c not in features.columns]
    if missing:
        raise ValueError(f"feature rows lack the offline columns {missing}")
    rows = OFFLINE_SCHEMA.conform(features)
    outside = (rows["created"] < interval.start) | (rows["created"] >= interval.end)
    if outside.any():
        raise ValueError(
            f"{int(outside.sum())} feature rows were not delivered in {interval} (created)"
        )
    new_by_date = {
        str(day): part for day, part in rows.groupby(rows["event_timestamp"].dt.date, sort=True)
    }
    dates = sorted({str(d) for d in touched_dates(settings, interval)} | set(new_by_date))
    lo, hi = pd.Timestamp(interval.start), pd.Timestamp(interval.end)
    written = removed = replaced = 0
    with _locked(root):
        for day in dates:
            path = batch_file(root, day)
            parts: list[pd.DataFrame] = []
            if path.is_file():
                old = OFFLINE_SCHEMA.conform(pd.read_parquet(path, engine="pyarrow"))
                keep = (old["created"] < lo) | (old["created"] >= hi)
                replaced += int((~keep).sum())
                if keep.all() and day not in new_by_date:
                    continue  # nothing of this interval in this file
                parts.append(old[keep])
            if day in new_by_date:
                parts.append(new_by_date[day])
            if not parts:
                continue
            merged = pd.concat(parts, ignore_index=True)
            if merged.empty:
                path.unlink(missing_ok=True)
                removed += 1
                continue
            merged = merged.sort_values(
                ["event_timestamp", "driver_id", "created"], kind="stable", ignore_index=True
            )
            staging.write_parquet(merged, path)
            written += 1
    return {
        "rows": len(rows),
        "files_written": written,
        "files_removed": removed,
        "rows_replaced": replaced,
        "event_dates": sorted(new_by_date),
    }


def publish(settings: DataPipelineSettings, interval: Interval) -> dict[str, Any]:
    began = time.perf_counter()
    features = staging.read_input(settings, interval, staging.FEATURES, "transform")
    result = publish_frame(settings, interval, features)
    summary: dict[str, Any] = {
        "step": "publish",
        "interval": {"start": interval.start.isoformat(), "end": interval.end.isoformat()},
        **result,
        "offline_store": str(offline_table_dir(settings)),
        "seconds": round(time.perf_counter() - began, 3),
    }
    staging.write_json(summary, staging.interval_dir(settings, interval) / "publish.json")
    return summary
