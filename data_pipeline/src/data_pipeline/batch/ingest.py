"""Ingest: read the interval's delivered driver statistics from the source and stage them.

The rows are those the source delivered in ``[start, end)`` (``created`` in the interval; see
``example_source.sinks``). The staged file replaces any earlier one of the same interval, so
re-running an interval never duplicates rows.
"""

from __future__ import annotations

import time
from typing import Any

from data_pipeline.batch import staging
from data_pipeline.example_source.schema import DRIVER_HOURLY_STATS, SCHEMAS
from data_pipeline.example_source.sinks import LocalFileSource, PostgresSource, open_source
from data_pipeline.settings import DataPipelineSettings
from mlops_common.intervals import Interval


def ingest(
    settings: DataPipelineSettings,
    interval: Interval,
    source: LocalFileSource | PostgresSource | None = None,
) -> dict[str, Any]:
    began = time.perf_counter()
    own = source is None
    src = source or open_source(settings)
    try:
        frame = src.read(DRIVER_HOURLY_STATS, interval.start, interval.end)
    finally:
        if own and isinstance(src, PostgresSource):
            src.close()
    frame = SCHEMAS[DRIVER_HOURLY_STATS].conform(frame)
    folder = staging.interval_dir(settings, interval)
    staging.write_parquet(frame, folder / staging.RAW)
    staging.clear_downstream(settings, interval, "ingest")
    summary: dict[str, Any] = {
        "step": "ingest",
        "interval": {"start": interval.start.isoformat(), "end": interval.end.isoformat()},
        "source": src.location,
        "rows": len(frame),
        "drivers": int(frame["driver_id"].nunique()),
        "output": str(folder / staging.RAW),
        "seconds": round(time.perf_counter() - began, 3),
    }
    staging.write_json(summary, folder / "ingest.json")
    return summary
