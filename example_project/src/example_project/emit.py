"""Emit the example world hour by hour, so that scheduled pipeline runs find new data.

``emit_period(settings, start, end)`` writes a whole period of history at once (what
``./run.sh all up`` asks the ``example_source`` DAG for on a fresh platform).

``emit_hour(settings, hour)`` writes to the configured source:

- the driver statistics *delivered* in ``[hour, hour + 1 h)`` (``created`` in that hour; clean rows
  arrive within 20 minutes of the hour), so the data pipeline's run for that hour, which starts
  at ``hour + 1 h``, finds them;
- the bookings and candidates of the hour before, ``[hour - 1 h, hour)``: labels are never written
  before their booking time.

Called at ``hour`` (the ``example_source`` DAG's run for ``[hour - 1 h, hour)``), the statistics
rows carry ``created`` times up to 20 minutes ahead: the example upstream system announces its
deliveries for the coming hour. Idempotent, like every write to the source.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from data_pipeline.example_source.config import ExampleSourceConfig, to_utc_hour
from data_pipeline.example_source.generator import generate
from data_pipeline.example_source.schema import BOOKING_CANDIDATES, BOOKINGS, DRIVER_HOURLY_STATS
from data_pipeline.example_source.sinks import (
    PostgresSource,
    SourceWriter,
    open_source,
    write_example_data,
)
from data_pipeline.settings import DataPipelineSettings

_HOUR = timedelta(hours=1)


def world_config(
    settings: DataPipelineSettings, start: datetime, end: datetime
) -> ExampleSourceConfig:
    """The ``MLOPS_EXAMPLE_*`` world, slice ``[start, end)``."""
    return ExampleSourceConfig.model_validate(
        {
            "seed": settings.example_seed,
            "n_drivers": settings.example_drivers,
            "start": start,
            "end": end,
            "bookings_per_hour": settings.example_bookings_per_hour,
            "scenario": settings.example_scenario,
            "drift_start": settings.example_drift_start,
        }
    )


def emit_hour(settings: DataPipelineSettings, hour: datetime) -> dict[str, Any]:
    began = time.perf_counter()
    hour = to_utc_hour(hour, "hour")
    stats = generate(world_config(settings, hour, hour + _HOUR)).driver_hourly_stats
    labels = generate(world_config(settings, hour - _HOUR, hour))
    source = open_source(settings)
    try:
        counts = {
            DRIVER_HOURLY_STATS: source.write(DRIVER_HOURLY_STATS, stats),
            BOOKINGS: source.write(BOOKINGS, labels.bookings),
            BOOKING_CANDIDATES: source.write(BOOKING_CANDIDATES, labels.booking_candidates),
        }
    finally:
        if isinstance(source, PostgresSource):
            source.close()
    return {
        "step": "emit",
        "hour": hour.isoformat(),
        "source": source.location,
        "rows": counts,
        "scenario": settings.example_scenario,
        "seconds": round(time.perf_counter() - began, 3),
    }


def write_period(
    source: SourceWriter, config: ExampleSourceConfig, chunk_hours: int = 24
) -> tuple[dict[str, int], pd.DataFrame]:
    """Generate ``config``'s period ``chunk_hours`` at a time and write every table to ``source``.

    Returns the rows written per table and the dirty-row manifest of the whole period (empty
    unless the scenario is ``dirty``). Chunks give exactly the rows of one big ``generate``.
    """
    if chunk_hours < 1:
        raise ValueError(f"chunk_hours must be at least 1 (got {chunk_hours})")
    counts: dict[str, int] = {}
    manifests: list[pd.DataFrame] = []
    step = timedelta(hours=chunk_hours)
    chunk_start = config.start
    while chunk_start < config.end:
        chunk_end = min(chunk_start + step, config.end)
        data = generate(config.with_period(chunk_start, chunk_end))
        for table, n in write_example_data(source, data).items():
            counts[table] = counts.get(table, 0) + n
        if not data.dirty_manifest.empty:
            manifests.append(data.dirty_manifest)
        chunk_start = chunk_end
    manifest = pd.concat(manifests, ignore_index=True) if manifests else pd.DataFrame()
    return counts, manifest


def emit_period(settings: DataPipelineSettings, start: datetime, end: datetime) -> dict[str, Any]:
    """Write the ``MLOPS_EXAMPLE_*`` world of ``[start, end)`` (whole UTC hours) to the source:
    statistics and bookings alike, as ``data-pipeline generate`` does. Idempotent."""
    began = time.perf_counter()
    config = world_config(settings, start, end)
    source = open_source(settings)
    try:
        counts, _ = write_period(source, config)
    finally:
        if isinstance(source, PostgresSource):
            source.close()
    return {
        "step": "emit",
        "start": config.start.isoformat(),
        "end": config.end.isoformat(),
        "source": source.location,
        "rows": counts,
        "scenario": settings.example_scenario,
        "seconds": round(time.perf_counter() - began, 3),
    }
