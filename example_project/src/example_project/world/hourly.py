"""The drivers at whole hours, as the generator sees them, and the rows of ``driver_hourly_stats``.

``HourlyDrivers.features(hour)`` is the formula of ``drivers.py`` at a whole hour with one noise
draw ``e`` per driver and hour (the seeded hourly stream); ``created_lag_seconds(hour)`` says when
each clean row is delivered (0-20 minutes after its hour).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from example_project.world.completion import FEATURES, FloatArray
from example_project.world.config import DRIVER_ID_OFFSET, Scenario
from example_project.world.drivers import (
    N_FEATURES,
    STREAM_HOUR,
    STREAM_LAG,
    DriverTerms,
    IntArray,
    seeded_rng,
)
from mlops_common.sources import DRIVER_HOURLY_STATS, SCHEMAS

SECONDS_PER_HOUR = 3600
#: clean rows arrive within 20 minutes of their hour
MAX_CREATED_LAG_S = 1200


def epoch_hour(ts: datetime) -> int:
    """Whole hours since 1970-01-01T00:00Z of an aware, hour-aligned datetime."""
    return int(ts.timestamp()) // SECONDS_PER_HOUR


class HourlyDrivers(DriverTerms):
    """The drivers at whole hours: the scenario's statistics per hour, cached."""

    def __init__(
        self, seed: int, n_drivers: int, scenario: Scenario, drift_hour: int | None
    ) -> None:
        super().__init__(seed, n_drivers)
        self.n_drivers = n_drivers
        self.scenario = scenario
        self.drift_hour = drift_hour
        self._hours: dict[int, dict[str, FloatArray]] = {}

    def drifted(self, hour: int) -> bool:
        return (
            self.scenario == Scenario.COVARIATE_DRIFT
            and self.drift_hour is not None
            and hour >= self.drift_hour
        )

    def features(self, hour: int) -> dict[str, FloatArray]:
        """The clean driver statistics of all drivers at one hour (scenario shift included)."""
        if hour not in self._hours:
            rng = seeded_rng(self.seed, STREAM_HOUR, hour)
            e = rng.standard_normal((self.n_drivers, N_FEATURES))
            self._hours[hour] = self.statistics(slice(None), float(hour), e, self.drifted(hour))
        return self._hours[hour]

    def created_lag_seconds(self, hour: int) -> IntArray:
        """Seconds between a clean row's hour and its delivery (``created``), 0-1200 s."""
        u = seeded_rng(self.seed, STREAM_LAG, hour).random(self.n_drivers)
        lag = np.floor(-np.log1p(-u) * 120.0)
        return np.minimum(lag, MAX_CREATED_LAG_S).astype(np.int64)


def seconds_to_ts(seconds: IntArray) -> pd.Series:
    """Seconds since the epoch as a ``datetime64[ns, UTC]`` series."""
    return pd.Series(pd.to_datetime(seconds, unit="s", utc=True)).astype("datetime64[ns, UTC]")


def stats_frame(
    driver_idx: IntArray, event_s: IntArray, created_s: IntArray, feats: dict[str, FloatArray]
) -> pd.DataFrame:
    """Rows of ``driver_hourly_stats`` from driver rows, times (seconds) and feature values."""
    frame = pd.DataFrame(
        {
            "driver_id": driver_idx.astype(np.int64) + DRIVER_ID_OFFSET,
            "event_timestamp": seconds_to_ts(event_s),
            "created": seconds_to_ts(created_s),
            **{name: feats[name] for name in FEATURES},
        }
    )
    return SCHEMAS[DRIVER_HOURLY_STATS].conform(frame)
