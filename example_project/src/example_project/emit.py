"""The example company's upstream systems: the world delivered hour by hour, so that scheduled
pipeline runs find new data.

``emit_period(settings, start, end)`` writes a whole period of history at once (what
``./run.sh all up`` asks the ``example_source`` DAG for on a fresh platform).

``emit_hour(settings, hour)`` writes to the example's storage (``storage``):

- the driver statistics *delivered* in ``[hour, hour + 1 h)`` (``created`` in that hour; clean rows
  arrive within 20 minutes of the hour), so the data pipeline's run for that hour, which starts
  at ``hour + 1 h``, finds them;
- the bookings and candidates of the hour before, ``[hour - 1 h, hour)``: labels are never written
  before their booking time.

Called at ``hour`` (the ``example_source`` DAG's run for ``[hour - 1 h, hour)``), the statistics
rows carry ``created`` times up to 20 minutes ahead: the example upstream system announces its
deliveries for the coming hour. Idempotent, like every write to the source.

``emit_task(context)`` is the ``example_source`` DAG's task.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import closing
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from example_project.settings import ExampleProjectSettings
from example_project.storage import open_example_source, write_example_data
from example_project.world.config import ExampleSourceConfig, to_utc_hour
from example_project.world.generator import generate
from mlops_common.intervals import ConfError, parse_utc, resolve_interval
from mlops_common.sources import BOOKING_CANDIDATES, BOOKINGS, DRIVER_HOURLY_STATS, SourceWriter

_HOUR = timedelta(hours=1)


def emit_hour(settings: ExampleProjectSettings, hour: datetime) -> dict[str, Any]:
    began = time.perf_counter()
    hour = to_utc_hour(hour, "hour")
    stats = generate(settings.world_config(hour, hour + _HOUR)).driver_hourly_stats
    labels = generate(settings.world_config(hour - _HOUR, hour))
    with closing(open_example_source(settings)) as source:
        counts = {
            DRIVER_HOURLY_STATS: source.write(DRIVER_HOURLY_STATS, stats),
            BOOKINGS: source.write(BOOKINGS, labels.bookings),
            BOOKING_CANDIDATES: source.write(BOOKING_CANDIDATES, labels.booking_candidates),
        }
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


def emit_period(settings: ExampleProjectSettings, start: datetime, end: datetime) -> dict[str, Any]:
    """Write the ``MLOPS_EXAMPLE_*`` world of ``[start, end)`` (whole UTC hours) to the source:
    statistics and bookings alike, as ``example-project generate`` does. Idempotent."""
    began = time.perf_counter()
    config = settings.world_config(start, end)
    with closing(open_example_source(settings)) as source:
        counts, _ = write_period(source, config)
    return {
        "step": "emit",
        "start": config.start.isoformat(),
        "end": config.end.isoformat(),
        "source": source.location,
        "rows": counts,
        "scenario": settings.example_scenario,
        "seconds": round(time.perf_counter() - began, 3),
    }


def _emit_from_conf(params: Mapping[str, Any], interval_end: Any) -> dict[str, Any]:
    if params.get("start") is not None or params.get("end") is not None:
        if params.get("hour") is not None:
            raise ConfError('conf gives "hour" and a period: give one of them')
        interval = resolve_interval(params, None, None)
        return emit_period(ExampleProjectSettings(), interval.start, interval.end)
    if params.get("hour") is not None:
        hour = parse_utc(str(params["hour"]), "hour")
    elif interval_end is not None:
        hour = parse_utc(interval_end, "hour")
    else:
        raise ConfError(
            'this run has no data interval: pass conf {"hour": "..."} or '
            '{"start": "...", "end": "..."}'
        )
    return emit_hour(ExampleProjectSettings(), hour)


def emit_task(context: Mapping[str, Any]) -> dict[str, Any]:
    """The ``example_source`` DAG's task: emit the period ``conf.start``/``conf.end`` (history,
    e.g. for a fresh platform), else the hour ``conf.hour``, else the data interval's end.

    Bad conf fails the task at once, without retries (``AirflowFailException``).
    """
    from airflow.sdk.exceptions import AirflowFailException

    try:
        summary = _emit_from_conf(context.get("params") or {}, context.get("data_interval_end"))
    except ValueError as exc:  # bad conf (BadInput), an invalid world or hour
        raise AirflowFailException(f"emit: {exc}") from exc
    print(f"example-project emit: {summary}", flush=True)
    return summary
