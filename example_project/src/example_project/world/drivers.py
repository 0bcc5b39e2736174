"""The drivers of the example world: their statistics, one formula for the batch and the stream.

Driver statistics of driver row ``i`` (``driver_id = 1001 + i``) at time ``t`` (all noise terms
standard normal):

    conv_rate       = sigmoid(0.5 q + 0.6 b1 + 0.35 s + 0.25 d1 + 0.35 e1)
    acc_rate        = sigmoid(1.1 + 0.35 q + 0.5 b2 + 0.15 s + 0.2 d2 + 0.3 e2)
    avg_daily_trips = round(12 · exp(0.45 b3 + 0.3 s + 0.15 d3 + 0.12 e3))
    rating          = 1 + 4 · sigmoid(2.2 + 0.3 q + 0.6 b4 + 0.1 d4 + 0.05 e4)
    cancel_rate     = sigmoid(-2.5 - 0.3 q + 0.45 b5 + 0.15 d5 + 0.3 e5)

``q, b1..b5`` are the driver's baseline (``q`` a shared "quality" factor that correlates the
features), ``s = sin(2π (hour_of_day - φ) / 24)`` a smooth daily cycle with a per-driver phase
``φ``, ``d`` per-driver-per-UTC-day noise and ``e`` fresh noise per driver and observation. Rates
are rounded to 4 decimals and ratings to 2; the completion model (``completion.py``) sees exactly
the rounded values.

Scenario ``covariate_drift`` shifts, once drifted, the conv_rate logit by -0.9, the avg_daily_trips
log by +0.45 (about 1.6 times as many trips) and the cancel_rate logit by +0.4.

Two samplings share the formula and the seeded terms (``DriverTerms``):

- the batch generator (``generator.py``): whole hours, ``e`` drawn once per driver and hour from
  the seeded hourly stream, so any slice of a period is reproducible;
- the stream producer (``DriverWorld.sample``): continuous time (``s`` with the *fractional* hour
  of the event), ``e`` drawn fresh for every event from the caller's random generator, so
  successive events of a driver differ. At a whole hour with the generator's hourly noise it gives
  exactly the generator's values (``tests/test_ex_drivers.py``).
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import numpy.typing as npt

from example_project.world.completion import FEATURES, FloatArray, sigmoid
from example_project.world.config import DRIVER_ID_OFFSET, Scenario

IntArray = npt.NDArray[np.int64]
Rows = IntArray | slice

# Every random stream of the world, in one place. Never renumber: that would change every
# generated data set (and the stream's drivers).
STREAM_DRIVER = 1
STREAM_DRIVER_PHASE = 2
STREAM_DAY = 3
STREAM_HOUR = 4
STREAM_LAG = 5
STREAM_BOOKINGS = 6
STREAM_DIRTY = 7

N_FEATURES = len(FEATURES)

# Covariate drift, applied to the driver statistics once drifted.
COVARIATE_SHIFT_CONV_LOGIT = -0.9
COVARIATE_SHIFT_TRIPS_LOG = 0.45
COVARIATE_SHIFT_CANCEL_LOGIT = 0.4

#: per-day noise blocks a ``DriverTerms`` keeps (a late row reaches 3 days back)
_DAYS_CACHED = 8
_SECONDS_PER_HOUR = 3600.0


def seeded_rng(seed: int, stream: int, key: int = 0) -> np.random.Generator:
    """The random generator of ``stream`` (and ``key``: an hour, a day) of the world ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, stream, key]))


def daily_cycle(hour_of_day: float | FloatArray, phase: FloatArray) -> FloatArray:
    """``s = sin(2π (hour_of_day - φ) / 24)``."""
    return np.asarray(np.sin(2.0 * math.pi * (hour_of_day - phase) / 24.0), dtype=np.float64)


def driver_statistics(
    b: FloatArray, s: FloatArray, d: FloatArray, e: FloatArray, drifted: bool
) -> dict[str, FloatArray]:
    """The formula of the module docstring: baseline rows ``b`` (n x 6), daily cycle ``s`` (n),
    day noise ``d`` and observation noise ``e`` (n x 5)."""
    q = b[:, 0]
    conv_logit = 0.5 * q + 0.6 * b[:, 1] + 0.35 * s + 0.25 * d[:, 0] + 0.35 * e[:, 0]
    acc_logit = 1.1 + 0.35 * q + 0.5 * b[:, 2] + 0.15 * s + 0.2 * d[:, 1] + 0.3 * e[:, 1]
    trips_log = np.log(12.0) + 0.45 * b[:, 3] + 0.3 * s + 0.15 * d[:, 2] + 0.12 * e[:, 2]
    rating_logit = 2.2 + 0.3 * q + 0.6 * b[:, 4] + 0.1 * d[:, 3] + 0.05 * e[:, 3]
    cancel_logit = -2.5 - 0.3 * q + 0.45 * b[:, 5] + 0.15 * d[:, 4] + 0.3 * e[:, 4]
    if drifted:
        conv_logit = conv_logit + COVARIATE_SHIFT_CONV_LOGIT
        trips_log = trips_log + COVARIATE_SHIFT_TRIPS_LOG
        cancel_logit = cancel_logit + COVARIATE_SHIFT_CANCEL_LOGIT
    return {
        "conv_rate": np.round(sigmoid(conv_logit), 4),
        "acc_rate": np.round(sigmoid(acc_logit), 4),
        "avg_daily_trips": np.rint(np.exp(trips_log)),
        "rating": np.round(1.0 + 4.0 * sigmoid(rating_logit), 2),
        "cancel_rate": np.round(sigmoid(cancel_logit), 4),
    }


class DriverTerms:
    """The seeded terms of driver rows ``0 .. n_rows - 1``: baseline, daily phase, day noise.

    Each is drawn as one block in driver order, so a driver's terms do not depend on how many
    drivers there are.
    """

    def __init__(self, seed: int, n_rows: int) -> None:
        self.seed = seed
        self.baseline: FloatArray = seeded_rng(seed, STREAM_DRIVER).standard_normal((n_rows, 6))
        self.phase: FloatArray = 24.0 * seeded_rng(seed, STREAM_DRIVER_PHASE).random(n_rows)
        self._days: dict[int, FloatArray] = {}

    @property
    def n_rows(self) -> int:
        return int(self.baseline.shape[0])

    def day_noise(self, day: int) -> FloatArray:
        """``d`` of every driver row for one UTC day (days since the epoch)."""
        if day not in self._days:
            if len(self._days) >= _DAYS_CACHED:
                self._days.pop(next(iter(self._days)))
            rng = seeded_rng(self.seed, STREAM_DAY, day)
            self._days[day] = rng.standard_normal((self.n_rows, N_FEATURES))
        return self._days[day]

    def statistics(
        self, rows: Rows, hours: float, e: FloatArray, drifted: bool
    ) -> dict[str, FloatArray]:
        """Statistics of driver ``rows`` at ``hours`` since the epoch (fractional allowed) with
        observation noise ``e``."""
        day = math.floor(hours) // 24
        s = daily_cycle(hours % 24.0, self.phase[rows])
        return driver_statistics(self.baseline[rows], s, self.day_noise(day)[rows], e, drifted)


class DriverWorld(DriverTerms):
    """The drivers ``driver_id_min .. driver_id_max`` (both >= 1001) in continuous time: what the
    stream producer reports on."""

    def __init__(
        self,
        seed: int,
        driver_id_min: int,
        driver_id_max: int,
        scenario: Scenario = Scenario.NORMAL,
        drift_start: datetime | None = None,
    ) -> None:
        if driver_id_min < DRIVER_ID_OFFSET or driver_id_max < driver_id_min:
            raise ValueError(
                f"driver ids must be a non-empty range starting at {DRIVER_ID_OFFSET} or later "
                f"(got {driver_id_min}-{driver_id_max})"
            )
        # Rows 0..max like the generator draws them; row i does not depend on the row count.
        super().__init__(seed, driver_id_max - DRIVER_ID_OFFSET + 1)
        self.driver_id_min = driver_id_min
        self.driver_id_max = driver_id_max
        self.scenario = scenario
        self.drift_start = drift_start

    @property
    def driver_ids(self) -> IntArray:
        return np.arange(self.driver_id_min, self.driver_id_max + 1, dtype=np.int64)

    def drifted(self, at: datetime) -> bool:
        """covariate_drift from ``drift_start`` on; without one, from the first event."""
        if self.scenario != Scenario.COVARIATE_DRIFT:
            return False
        return self.drift_start is None or at >= self.drift_start

    def sample(
        self, driver_ids: IntArray, at: datetime, rng: np.random.Generator
    ) -> dict[str, FloatArray]:
        """Statistics of the given drivers at time ``at`` (aware), one fresh ``e`` per row."""
        rows = driver_ids.astype(np.int64) - DRIVER_ID_OFFSET
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_rows):
            raise ValueError("driver id outside the world's range")
        e = rng.standard_normal((rows.size, N_FEATURES))
        return self.statistics(rows, at.timestamp() / _SECONDS_PER_HOUR, e, self.drifted(at))
