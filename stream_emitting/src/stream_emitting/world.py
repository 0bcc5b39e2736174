"""The drivers the producer reports on: the example world of the data pipeline, sampled live.

Dependency direction: ``data_pipeline`` depends on ``stream_emitting`` (it imports the event
schema), so ``stream_emitting`` cannot import the data pipeline's generator. Instead this module
restates the generator's documented model of a driver's statistics
(``data_pipeline/docs/example_data.md``) in continuous time, with the same seeding of the
per-driver terms, so that for the same seed the stream talks about the same drivers as the batch
data:

    conv_rate       = sigmoid(0.5 q + 0.6 b1 + 0.35 s + 0.25 d1 + 0.35 e1)
    acc_rate        = sigmoid(1.1 + 0.35 q + 0.5 b2 + 0.15 s + 0.2 d2 + 0.3 e2)
    avg_daily_trips = round(12 · exp(0.45 b3 + 0.3 s + 0.15 d3 + 0.12 e3))
    rating          = 1 + 4 · sigmoid(2.2 + 0.3 q + 0.6 b4 + 0.1 d4 + 0.05 e4)
    cancel_rate     = sigmoid(-2.5 - 0.3 q + 0.45 b5 + 0.15 d5 + 0.3 e5)

- ``q, b1..b5`` (driver baseline) and ``φ`` (daily phase): numpy ``default_rng(SeedSequence([seed,
  1]))`` / ``[seed, 2]`` drawn in driver order, exactly as the generator draws them (driver
  ``1001 + i`` is row ``i``);
- ``d`` (per driver and UTC day): ``SeedSequence([seed, 3, day])``, as in the generator;
- ``s = sin(2π (hour_of_day - φ) / 24)`` with the *fractional* hour of the event's time (the
  generator uses whole hours);
- ``e`` (standard normal): drawn fresh for every event from the producer's own random stream
  (the generator draws one per driver and hour), so successive events of a driver differ.

Rates are rounded to 4 decimals, ratings to 2, trips to an integer, like the batch data.
``data_pipeline/tests/test_dp_stream_world.py`` checks the shared terms against the generator.

Scenarios (names shared with the batch generator):

- ``normal`` and ``concept_drift``: the model above (concept drift changes how labels depend on
  the features, not the features, so the stream is the same);
- ``covariate_drift``: from ``drift_start`` on (default: from the producer's start), the
  generator's documented shifts: conv_rate logit -0.9, avg_daily_trips log +0.45 (about 1.57
  times the trips), cancel_rate logit +0.4;
- ``dirty``: the ``normal`` statistics, and the producer emits a fraction of malformed events and
  of duplicates (see ``stream_emitting.producer``).
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: driver_id of the generator's first driver (row 0 of the baselines).
DRIVER_ID_OFFSET = 1001

# The generator's random streams for the per-driver and per-day terms. Never renumber.
STREAM_DRIVER = 1
STREAM_DRIVER_PHASE = 2
STREAM_DAY = 3

COVARIATE_SHIFT_CONV_LOGIT = -0.9
COVARIATE_SHIFT_TRIPS_LOG = 0.45
COVARIATE_SHIFT_CANCEL_LOGIT = 0.4

_SECONDS_PER_HOUR = 3600.0
_N_FEATURES = 5


class Scenario(StrEnum):
    NORMAL = "normal"
    COVARIATE_DRIFT = "covariate_drift"
    CONCEPT_DRIFT = "concept_drift"
    DIRTY = "dirty"


def _rng(seed: int, stream: int, key: int | None = None) -> np.random.Generator:
    entropy = [seed, stream] if key is None else [seed, stream, key]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


class DriverWorld:
    """Per-driver terms of drivers ``driver_id_min .. driver_id_max`` (both >= 1001)."""

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
        self.seed = seed
        self.driver_id_min = driver_id_min
        self.driver_id_max = driver_id_max
        self.scenario = scenario
        self.drift_start = drift_start
        rows = driver_id_max - DRIVER_ID_OFFSET + 1
        # Drawn for rows 0..max like the generator does; row i does not depend on the row count.
        self.baseline: FloatArray = _rng(seed, STREAM_DRIVER).standard_normal((rows, 6))
        self.phase: FloatArray = 24.0 * _rng(seed, STREAM_DRIVER_PHASE).random(rows)
        self._day: tuple[int, FloatArray] | None = None

    @property
    def driver_ids(self) -> IntArray:
        return np.arange(self.driver_id_min, self.driver_id_max + 1, dtype=np.int64)

    def day_noise(self, day: int) -> FloatArray:
        """``d`` of every driver row for one UTC day (days since the epoch)."""
        if self._day is None or self._day[0] != day:
            rows = self.baseline.shape[0]
            self._day = (day, _rng(self.seed, STREAM_DAY, day).standard_normal((rows, _N_FEATURES)))
        return self._day[1]

    def drifted(self, at: datetime) -> bool:
        if self.scenario != Scenario.COVARIATE_DRIFT:
            return False
        return self.drift_start is None or at >= self.drift_start

    def sample(
        self, driver_ids: IntArray, at: datetime, rng: np.random.Generator
    ) -> dict[str, FloatArray]:
        """Statistics of the given drivers at time ``at`` (aware), one fresh ``e`` per row."""
        rows = driver_ids.astype(np.int64) - DRIVER_ID_OFFSET
        if rows.size and (rows.min() < 0 or rows.max() >= self.baseline.shape[0]):
            raise ValueError("driver id outside the world's range")
        hours = at.timestamp() / _SECONDS_PER_HOUR
        day = math.floor(hours) // 24
        b = self.baseline[rows]
        q = b[:, 0]
        d = self.day_noise(day)[rows]
        e = rng.standard_normal((rows.size, _N_FEATURES))
        s = np.sin(2.0 * math.pi * ((hours % 24.0) - self.phase[rows]) / 24.0)
        conv_logit = 0.5 * q + 0.6 * b[:, 1] + 0.35 * s + 0.25 * d[:, 0] + 0.35 * e[:, 0]
        acc_logit = 1.1 + 0.35 * q + 0.5 * b[:, 2] + 0.15 * s + 0.2 * d[:, 1] + 0.3 * e[:, 1]
        trips_log = np.log(12.0) + 0.45 * b[:, 3] + 0.3 * s + 0.15 * d[:, 2] + 0.12 * e[:, 2]
        rating_logit = 2.2 + 0.3 * q + 0.6 * b[:, 4] + 0.1 * d[:, 3] + 0.05 * e[:, 3]
        cancel_logit = -2.5 - 0.3 * q + 0.45 * b[:, 5] + 0.15 * d[:, 4] + 0.3 * e[:, 4]
        if self.drifted(at):
            conv_logit = conv_logit + COVARIATE_SHIFT_CONV_LOGIT
            trips_log = trips_log + COVARIATE_SHIFT_TRIPS_LOG
            cancel_logit = cancel_logit + COVARIATE_SHIFT_CANCEL_LOGIT
        return {
            "conv_rate": np.round(_sigmoid(conv_logit), 4),
            "acc_rate": np.round(_sigmoid(acc_logit), 4),
            "avg_daily_trips": np.rint(np.exp(trips_log)),
            "rating": np.round(1.0 + 4.0 * _sigmoid(rating_logit), 2),
            "cancel_rate": np.round(_sigmoid(cancel_logit), 4),
        }
