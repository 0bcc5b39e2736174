"""Emit the example world hour by hour, so that scheduled pipeline runs find new data.

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

from data_pipeline.example_source.config import ExampleSourceConfig, to_utc_hour
from data_pipeline.example_source.generator import generate
from data_pipeline.example_source.schema import BOOKING_CANDIDATES, BOOKINGS, DRIVER_HOURLY_STATS
from data_pipeline.example_source.sinks import PostgresSource, open_source
from data_pipeline.settings import DataPipelineSettings

_HOUR = timedelta(hours=1)


def world_config(settings: DataPipelineSettings, start: datetime, end: datetime) -> (
    ExampleSourceConfig
):
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
