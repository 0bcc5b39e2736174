"""Deterministic generator of the example world: hourly driver statistics, bookings, candidates.

Every random number comes from a numpy ``Generator`` seeded by ``(seed, stream, key)`` where
``key`` is the hour (hours since the Unix epoch), the day, or nothing (per-driver baselines); the
streams are listed in ``drivers.py``. Each stream is drawn as one ``(n_drivers, k)`` block in driver
order, so a driver's values do not depend on how many drivers there are, and an hour's values do
not depend on which other hours are generated: any slice of a period is exactly the rows of
generating the whole period at once.

The pieces: the driver statistics (``drivers.py``, the one formula shared with the stream, at whole
hours: ``hourly.py``), the ``dirty`` scenario's defects (``dirt.py``), the bookings and their
labels from the true completion model (``bookings.py``); see ``docs/example_data.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from example_project.world.bookings import bookings_and_candidates
from example_project.world.completion import FEATURES, FloatArray
from example_project.world.config import ExampleSourceConfig, Scenario
from example_project.world.dirt import DirtyParts, apply_dirt, build_manifest, dirty_hour
from example_project.world.drivers import IntArray
from example_project.world.hourly import SECONDS_PER_HOUR, HourlyDrivers, epoch_hour, stats_frame
from mlops_common.sources import BOOKING_CANDIDATES, BOOKINGS, DRIVER_HOURLY_STATS

#: Columns that carry the ground truth. They exist for evaluation only: a model must never see them.
GROUND_TRUTH_COLUMNS: frozenset[str] = frozenset({"true_p", "completed_if_assigned"})


@dataclass(frozen=True)
class ExampleData:
    """The generated tables of one slice; see ``mlops_common.sources.SCHEMAS`` for their columns.

    ``dirty_manifest`` lists every row the ``dirty`` scenario made dirty (empty otherwise): one
    row per defect, keyed by the dirty row's ``(driver_id, event_timestamp, created)``, with
    ``defect`` in {null_value, out_of_range, duplicate, late}, the affected ``column``
    (null_value and out_of_range) and a human-readable ``detail``. Rows whose key is not in the
    manifest are exactly the rows of the ``normal`` scenario.
    """

    config: ExampleSourceConfig
    driver_hourly_stats: pd.DataFrame
    bookings: pd.DataFrame
    booking_candidates: pd.DataFrame
    dirty_manifest: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The source tables by name (the manifest is not a source table)."""
        return {
            DRIVER_HOURLY_STATS: self.driver_hourly_stats,
            BOOKINGS: self.bookings,
            BOOKING_CANDIDATES: self.booking_candidates,
        }


def _clean_stats(
    world: HourlyDrivers, hours: IntArray
) -> tuple[pd.DataFrame, list[dict[str, FloatArray]], list[IntArray]]:
    """Every driver's clean row of every hour, and per hour the statistics and delivery lags."""
    hour_feats = [world.features(int(hour)) for hour in hours]
    lags = [world.created_lag_seconds(int(hour)) for hour in hours]
    n = world.n_drivers
    event_s = np.repeat(hours * SECONDS_PER_HOUR, n)
    created_s = event_s + np.concatenate(lags) if lags else event_s
    stacked = {
        name: (
            np.concatenate([f[name] for f in hour_feats]) if hour_feats else np.empty(0, np.float64)
        )
        for name in FEATURES
    }
    driver_idx = np.tile(np.arange(n, dtype=np.int64), len(hours))
    return stats_frame(driver_idx, event_s, created_s, stacked), hour_feats, lags


def generate(config: ExampleSourceConfig) -> ExampleData:
    """Generate every table of the slice ``[config.start, config.end)``.

    Pure: the result depends only on the config, and slices of a period concatenate to the
    period (``pd.concat`` of the slices, in time order, equals the whole).
    """
    world = HourlyDrivers(
        seed=config.seed,
        n_drivers=config.n_drivers,
        scenario=config.scenario,
        drift_hour=None if config.drift_start is None else epoch_hour(config.drift_start),
    )
    first = epoch_hour(config.start)
    hours = np.arange(first, first + config.n_hours, dtype=np.int64)
    stats, hour_feats, lags = _clean_stats(world, hours)
    parts = DirtyParts()
    if config.scenario == Scenario.DIRTY:
        for i, hour in enumerate(hours):
            dirty_hour(world, int(hour), i * config.n_drivers, lags[i], config.dirty_rates, parts)
        stats = apply_dirt(stats, parts)
    bookings, candidates = bookings_and_candidates(config, hours, hour_feats)
    return ExampleData(
        config=config,
        driver_hourly_stats=stats,
        bookings=bookings,
        booking_candidates=candidates,
        dirty_manifest=build_manifest(parts),
    )
