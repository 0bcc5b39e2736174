"""Ingest: read the interval's delivered driver statistics from the source and stage them.

The source is the configured one (``MLOPS_SOURCE``, see ``mlops_common.sources``); the rows are
those it delivered in ``[start, end)`` (``created`` in the interval). The staged file replaces any
earlier one of the same interval, so re-running an interval never duplicates rows.
"""

from __future__ import annotations

import time
from typing import Any

from data_pipeline.batch import staging
from data_pipeline.settings import DataPipelineSettings
from mlops_common.intervals import Interval
from mlops_common.sources import DRIVER_HOURLY_STATS, SCHEMAS, Source, open_source


def ingest(
    settings: DataPipelineSettings, interval: Interval, source: Source | None = None
) -> dict[str, Any]:
    """Stage the rows ``source`` (default: the configured one) delivered in ``interval``."""
    began = time.perf_counter()
    src = source or open_source(settings)
    try:
        frame = src.read(DRIVER_HOURLY_STATS, interval.start, interval.end)
    finally:
        if source is None:
            src.close()
    frame = SCHEMAS[DRIVER_HOURLY_STATS].conform(frame)
    output = staging.stage_output(settings, interval, "ingest", frame, staging.RAW)
    summary: dict[str, Any] = {
        "step": "ingest",
        "interval": {"start": interval.start.isoformat(), "end": interval.end.isoformat()},
        "source": src.location,
        "rows": len(frame),
        "drivers": int(frame["driver_id"].nunique()),
        "output": str(output),
        "seconds": round(time.perf_counter() - began, 3),
    }
    staging.write_json(summary, output.parent / "ingest.json")
    return summary
