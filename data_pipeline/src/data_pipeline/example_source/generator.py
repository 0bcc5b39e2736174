"""Deterministic generator of the example world: hourly driver statistics, bookings, candidates.

Every random number comes from a numpy ``Generator`` seeded by ``(seed, stream, key)`` where
``key`` is the hour (hours since the Unix epoch), the day, or nothing (per-driver baselines).
Each stream is drawn as one ``(n_drivers, k)`` block in driver order, so a driver's values do not
depend on how many drivers there are, and an hour's values do not depend on which other hours are
generated: any slice of a period is exactly the rows of generating the whole period at once.

Driver statistics of driver ``i`` at hour ``h`` (all noise terms standard normal):

    conv_rate       = sigmoid(0.5 q + 0.6 b1 + 0.35 s + 0.25 d1 + 0.35 e1)
    acc_rate        = sigmoid(1.1 + 0.35 q + 0.5 b2 + 0.15 s + 0.2 d2 + 0.3 e2)
    avg_daily_trips = round(12 · exp(0.45 b3 + 0.3 s + 0.15 d3 + 0.12 e3))
    rating          = 1 + 4 · sigmoid(2.2 + 0.3 q + 0.6 b4 + 0.1 d4 + 0.05 e4)
    cancel_rate     = sigmoid(-2.5 - 0.3 q + 0.45 b5 + 0.15 d5 + 0.3 e5)

``q, b1..b5`` are the driver's baseline (``q`` a shared "quality" factor that correlates the
features), ``s = sin(2π (hour_of_day - φ) / 24)`` a smooth daily cycle with a per-driver phase
``φ``, ``d`` per-driver-per-day noise and ``e`` per-driver-per-hour noise. Rates are rounded to 4
decimals and ratings to 2; the completion model (``model.py``) sees exactly the rounded values.

Scenario ``covariate_drift`` shifts, from ``drift_start`` on, the conv_rate logit by -0.9, the
avg_daily_trips log by +0.45 (about 1.6 times as many trips) and the cancel_rate logit by +0.4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from data_pipeline.example_source.config import (
    DRIVER_ID_OFFSET,
    DirtyRates,
    ExampleSourceConfig,
    Scenario,
)
from data_pipeline.example_source.model import (
    CONCEPT_DRIFT_WEIGHTS,
    FEATURES,
    NORMAL_WEIGHTS,
    completion_probability,
    sigmoid,
)
from data_pipeline.example_source.schema import (
    BOOKING_CANDIDATES,
    BOOKINGS,
    DRIVER_HOURLY_STATS,
    MANIFEST_COLUMNS,
    SCHEMAS,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Random streams. Never renumber: that would change every generated data set.
_STREAM_DRIVER = 1
_STREAM_DRIVER_PHASE = 2
_STREAM_DAY = 3
_STREAM_HOUR = 4
_STREAM_LAG = 5
_STREAM_BOOKINGS = 6
_STREAM_DIRTY = 7

_N_FEATURES = len(FEATURES)
_SECONDS_PER_HOUR = 3600
_MAX_CREATED_LAG_S = 1200  # clean rows arrive within 20 minutes of their hour

# Covariate drift, applied to driver statistics at or after drift_start.
COVARIATE_SHIFT_CONV_LOGIT = -0.9
COVARIATE_SHIFT_TRIPS_LOG = 0.45
COVARIATE_SHIFT_CANCEL_LOGIT = 0.4

# Float features that the dirty scenario may null out (avg_daily_trips stays int64, never null).
_NULLABLE_FEATURES = ("conv_rate", "acc_rate", "rating", "cancel_rate")


def _rng(seed: int, stream: int, key: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream, key]))


def epoch_hour(ts: datetime) -> int:
    """Whole hours since 1970-01-01T00:00Z of an aware, hour-aligned datetime."""
    return int(ts.timestamp()) // _SECONDS_PER_HOUR


@dataclass
class _World:
    """Per-driver baselines plus caches of the per-day and per-hour random blocks."""

    seed: int
    n_drivers: int
    scenario: Scenario
    drift_hour: int | None
    baseline: FloatArray = field(init=False)
    phase: FloatArray = field(init=False)
    _day_cache: dict[int, FloatArray] = field(default_factory=dict, init=False)
    _hour_cache: dict[int, dict[str, FloatArray]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.baseline = _rng(self.seed, _STREAM_DRIVER).standard_normal((self.n_drivers, 6))
        self.phase = 24.0 * _rng(self.seed, _STREAM_DRIVER_PHASE).random(self.n_drivers)

    def day_noise(self, day: int) -> FloatArray:
        if day not in self._day_cache:
            block = _rng(self.seed, _STREAM_DAY, day).standard_normal((self.n_drivers, _N_FEATURES))
            self._day_cache[day] = block
        return self._day_cache[day]

    def features(self, hour: int) -> dict[str, FloatArray]:
        """The clean driver statistics of all drivers at one hour (scenario shift included)."""
        if hour not in self._hour_cache:
            self._hour_cache[hour] = self._features(hour)
        return self._hour_cache[hour]

    def _features(self, hour: int) -> dict[str, FloatArray]:
        b = self.baseline
        q = b[:, 0]
        d = self.day_noise(hour // 24)
        e = _rng(self.seed, _STREAM_HOUR, hour).standard_normal((self.n_drivers, _N_FEATURES))
        s = np.sin(2.0 * math.pi * ((hour % 24) - self.phase) / 24.0)
        conv_logit = 0.5 * q + 0.6 * b[:, 1] + 0.35 * s + 0.25 * d[:, 0] + 0.35 * e[:, 0]
        acc_logit = 1.1 + 0.35 * q + 0.5 * b[:, 2] + 0.15 * s + 0.2 * d[:, 1] + 0.3 * e[:, 1]
        trips_log = np.log(12.0) + 0.45 * b[:, 3] + 0.3 * s + 0.15 * d[:, 2] + 0.12 * e[:, 2]
        rating_logit = 2.2 + 0.3 * q + 0.6 * b[:, 4] + 0.1 * d[:, 3] + 0.05 * e[:, 3]
        cancel_logit = -2.5 - 0.3 * q + 0.45 * b[:, 5] + 0.15 * d[:, 4] + 0.3 * e[:, 4]
        if (
            self.scenario == Scenario.COVARIATE_DRIFT
            and self.drift_hour is not None
            and hour >= self.drift_hour
        ):
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

    def created_lag_seconds(self, hour: int) -> IntArray:
        """Seconds between a clean row's hour and its delivery (``created``), 0-1200 s."""
        u = _rng(self.seed, _STREAM_LAG, hour).random(self.n_drivers)
        lag = np.floor(-np.log1p(-u) * 120.0)
        return np.minimum(lag, _MAX_CREATED_LAG_S).astype(np.int64)


@dataclass(frozen=True)
class ExampleData:
    """The generated tables of one slice; see ``schema.SCHEMAS`` for their columns and dtypes.

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


@dataclass
class _DirtyParts:
    """Per-hour defects: in-place value changes plus extra rows."""

    null_rows: list[IntArray] = field(default_factory=list)  # flat row index into the stats
    null_cols: list[IntArray] = field(default_factory=list)
    oor_rows: list[IntArray] = field(default_factory=list)
    oor_cols: list[IntArray] = field(default_factory=list)
    oor_values: list[FloatArray] = field(default_factory=list)
    # duplicates and late rows, as (driver index, event seconds, created seconds, features)
    extra: list[tuple[IntArray, IntArray, IntArray, dict[str, FloatArray]]] = field(
        default_factory=list
    )
    manifest: list[pd.DataFrame] = field(default_factory=list)


def _seconds_to_ts(seconds: IntArray) -> pd.Series:
    return pd.Series(pd.to_datetime(seconds, unit="s", utc=True)).astype("datetime64[ns, UTC]")


def _stats_frame(
    driver_idx: IntArray, event_s: IntArray, created_s: IntArray, feats: dict[str, FloatArray]
) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "driver_id": driver_idx.astype(np.int64) + DRIVER_ID_OFFSET,
            "event_timestamp": _seconds_to_ts(event_s),
            "created": _seconds_to_ts(created_s),
            **{name: feats[name] for name in FEATURES},
        }
    )
    return SCHEMAS[DRIVER_HOURLY_STATS].conform(frame)


def _out_of_range_value(column: str, upper: bool, magnitude: float) -> float:
    if column == "avg_daily_trips":
        return float(-(1 + math.floor(magnitude * 20)))
    if column == "rating":
        return round(5.1 + 4.0 * magnitude, 2) if upper else round(0.9 * magnitude, 2)
    return round(1.05 + 0.5 * magnitude, 4) if upper else round(-0.05 - 0.5 * magnitude, 4)


def _dirty_hour(
    world: _World,
    hour: int,
    row_offset: int,
    feats: dict[str, FloatArray],
    created_lag: IntArray,
    rates: DirtyRates,
    seed: int,
    parts: _DirtyParts,
) -> None:
    n = world.n_drivers
    rng = _rng(seed, _STREAM_DIRTY, hour)
    n_null = int(rng.binomial(n, rates.null))
    n_oor = int(rng.binomial(n, rates.out_of_range))
    n_dup = int(rng.binomial(n, rates.duplicate))
    n_late = int(rng.binomial(n, rates.late))
    perm = rng.permutation(n)
    # In-place defects hit disjoint rows; duplicates copy rows that stay clean.
    n_null = min(n_null, n)
    n_oor = min(n_oor, n - n_null)
    n_dup = min(n_dup, n - n_null - n_oor)
    null_rows = perm[:n_null]
    oor_rows = perm[n_null : n_null + n_oor]
    dup_rows = perm[n_null + n_oor : n_null + n_oor + n_dup]
    null_cols = rng.integers(0, len(_NULLABLE_FEATURES), size=n_null)
    oor_cols = rng.integers(0, _N_FEATURES, size=n_oor)
    oor_upper = rng.random(n_oor) < 0.5
    oor_mag = rng.random(n_oor)
    dup_extra_lag = rng.integers(60, 3600 - _MAX_CREATED_LAG_S, size=n_dup)
    late_drivers = rng.integers(0, n, size=n_late)
    late_age = rng.integers(2, 73, size=n_late)
    late_created = rng.integers(0, _SECONDS_PER_HOUR, size=n_late)

    hour_s = hour * _SECONDS_PER_HOUR
    manifest: list[dict[str, object]] = []

    # nulls
    feature_pos = {name: i for i, name in enumerate(FEATURES)}
    null_feature_idx = np.array([feature_pos[_NULLABLE_FEATURES[c]] for c in null_cols], np.int64)
    parts.null_rows.append(row_offset + null_rows.astype(np.int64))
    parts.null_cols.append(null_feature_idx)
    for r, c in zip(null_rows, null_feature_idx, strict=True):
        manifest.append(
            {
                "driver_idx": int(r),
                "event_s": hour_s,
                "created_s": hour_s + int(created_lag[r]),
                "defect": "null_value",
                "column": FEATURES[c],
                "detail": f"{FEATURES[c]} is null",
            }
        )

    # out of range
    values = np.array(
        [
            _out_of_range_value(FEATURES[c], bool(u), float(m))
            for c, u, m in zip(oor_cols, oor_upper, oor_mag, strict=True)
        ],
        dtype=np.float64,
    )
    parts.oor_rows.append(row_offset + oor_rows.astype(np.int64))
    parts.oor_cols.append(oor_cols.astype(np.int64))
    parts.oor_values.append(values)
    for r, c, v in zip(oor_rows, oor_cols, values, strict=True):
        shown = int(v) if FEATURES[c] == "avg_daily_trips" else float(v)
        manifest.append(
            {
                "driver_idx": int(r),
                "event_s": hour_s,
                "created_s": hour_s + int(created_lag[r]),
                "defect": "out_of_range",
                "column": FEATURES[c],
                "detail": f"{FEATURES[c]}={shown} outside its valid range",
            }
        )

    # duplicates: the same row delivered again later in the hour
    dup_created = hour_s + created_lag[dup_rows] + dup_extra_lag
    if n_dup:
        parts.extra.append(
            (
                dup_rows.astype(np.int64),
                np.full(n_dup, hour_s, np.int64),
                dup_created.astype(np.int64),
                {name: feats[name][dup_rows] for name in FEATURES},
            )
        )
    for r, cs in zip(dup_rows, dup_created, strict=True):
        manifest.append(
            {
                "driver_idx": int(r),
                "event_s": hour_s,
                "created_s": int(cs),
                "defect": "duplicate",
                "column": None,
                "detail": "second delivery of the same driver and hour",
            }
        )

    # late rows: a clean row of an earlier hour delivered in this hour
    if n_late:
        late_feats: dict[str, list[float]] = {name: [] for name in FEATURES}
        for drv, age in zip(late_drivers, late_age, strict=True):
            old = world.features(hour - int(age))
            for name in FEATURES:
                late_feats[name].append(float(old[name][drv]))
        late_event = (hour - late_age.astype(np.int64)) * _SECONDS_PER_HOUR
        parts.extra.append(
            (
                late_drivers.astype(np.int64),
                late_event,
                hour_s + late_created.astype(np.int64),
                {name: np.asarray(v, dtype=np.float64) for name, v in late_feats.items()},
            )
        )
        for drv, age, lc in zip(late_drivers, late_age, late_created, strict=True):
            manifest.append(
                {
                    "driver_idx": int(drv),
                    "event_s": (hour - int(age)) * _SECONDS_PER_HOUR,
                    "created_s": hour_s + int(lc),
                    "defect": "late",
                    "column": None,
                    "detail": f"event_timestamp {int(age)} h before its delivery hour",
                }
            )
    if manifest:
        parts.manifest.append(pd.DataFrame(manifest))


def _build_manifest(parts: _DirtyParts) -> pd.DataFrame:
    if not parts.manifest:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in MANIFEST_COLUMNS.items()})
    raw = pd.concat(parts.manifest, ignore_index=True)
    frame = pd.DataFrame(
        {
            "table": DRIVER_HOURLY_STATS,
            "driver_id": raw["driver_idx"].astype(np.int64) + DRIVER_ID_OFFSET,
            "event_timestamp": _seconds_to_ts(raw["event_s"].to_numpy(np.int64)),
            "created": _seconds_to_ts(raw["created_s"].to_numpy(np.int64)),
            "defect": raw["defect"],
            "column": raw["column"],
            "detail": raw["detail"],
        }
    )
    return frame.astype(MANIFEST_COLUMNS)


def _bookings(
    config: ExampleSourceConfig, hours: IntArray, hour_feats: list[dict[str, FloatArray]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    n_b = config.bookings_per_hour
    k = config.candidates_per_booking
    n = config.n_drivers
    n_hours = len(hours)
    cand = np.empty((n_hours, n_b, k), np.int64)
    offsets = np.empty((n_hours, n_b), np.int64)
    uniforms = np.empty((n_hours, n_b, k), np.float64)
    assigned = np.empty((n_hours, n_b), np.int64)
    feats = {name: np.empty((n_hours, n_b, k), np.float64) for name in FEATURES}
    for i, hour in enumerate(hours):
        rng = _rng(config.seed, _STREAM_BOOKINGS, int(hour))
        offsets[i] = np.sort(rng.integers(1, _SECONDS_PER_HOUR, size=n_b))
        keys = rng.random((n_b, n))
        if k < n:
            chosen = np.argpartition(keys, k - 1, axis=1)[:, :k]
        else:
            chosen = np.tile(np.arange(n), (n_b, 1))
        order = np.argsort(np.take_along_axis(keys, chosen, axis=1), axis=1)
        cand[i] = np.take_along_axis(chosen, order, axis=1)
        uniforms[i] = rng.random((n_b, k))
        assigned[i] = rng.integers(0, k, size=n_b)
        for name in FEATURES:
            feats[name][i] = hour_feats[i][name][cand[i]]

    ts_s = (hours[:, None] * _SECONDS_PER_HOUR + offsets).reshape(-1)
    cand_ts_s = np.repeat(ts_s, k)
    feature_frame = pd.DataFrame({name: feats[name].reshape(-1) for name in FEATURES})
    p = completion_probability(feature_frame, NORMAL_WEIGHTS)
    if config.scenario == Scenario.CONCEPT_DRIFT and config.drift_start is not None:
        drift_s = int(config.drift_start.timestamp())
        p_drift = completion_probability(feature_frame, CONCEPT_DRIFT_WEIGHTS)
        p = np.where(cand_ts_s >= drift_s, p_drift, p)
    completed = uniforms.reshape(-1) < p

    hour_labels = [f"{pd.Timestamp(int(h) * _SECONDS_PER_HOUR, unit='s'):%Y%m%d%H}" for h in hours]
    booking_ids = np.array(
        [f"bk-{config.seed}-{label}-{j:05d}" for label in hour_labels for j in range(n_b)],
        dtype=object,
    )
    positions = np.tile(np.arange(k, dtype=np.int64), n_hours * n_b)
    is_assigned = positions == np.repeat(assigned.reshape(-1), k)
    candidates = SCHEMAS[BOOKING_CANDIDATES].conform(
        pd.DataFrame(
            {
                "booking_id": np.repeat(booking_ids, k),
                "event_timestamp": _seconds_to_ts(cand_ts_s),
                "driver_id": cand.reshape(-1) + DRIVER_ID_OFFSET,
                "position": positions,
                "is_assigned": is_assigned,
                "true_p": p,
                "completed_if_assigned": completed,
            }
        )
    )
    chosen_rows = candidates[candidates["is_assigned"]]
    bookings = SCHEMAS[BOOKINGS].conform(
        pd.DataFrame(
            {
                "booking_id": chosen_rows["booking_id"].to_numpy(),
                "event_timestamp": chosen_rows["event_timestamp"].to_numpy(),
                "driver_id": chosen_rows["driver_id"].to_numpy(),
                "trip_completed": chosen_rows["completed_if_assigned"].to_numpy(),
                "true_p": chosen_rows["true_p"].to_numpy(),
            }
        )
    )
    return bookings, candidates


def generate(config: ExampleSourceConfig) -> ExampleData:
    """Generate every table of the slice ``[config.start, config.end)``.

    Pure: the result depends only on the config, and slices of a period concatenate to the
    period (``pd.concat`` of the slices, in time order, equals the whole).
    """
    world = _World(
        seed=config.seed,
        n_drivers=config.n_drivers,
        scenario=config.scenario,
        drift_hour=None if config.drift_start is None else epoch_hour(config.drift_start),
    )
    first = epoch_hour(config.start)
    hours = np.arange(first, first + config.n_hours, dtype=np.int64)
    n = config.n_drivers
    driver_idx = np.arange(n, dtype=np.int64)

    hour_feats: list[dict[str, FloatArray]] = []
    lags: list[IntArray] = []
    for hour in hours:
        hour_feats.append(world.features(int(hour)))
        lags.append(world.created_lag_seconds(int(hour)))

    event_s = np.repeat(hours * _SECONDS_PER_HOUR, n)
    created_s = event_s + np.concatenate(lags) if lags else event_s
    stacked = {
        name: (
            np.concatenate([f[name] for f in hour_feats]) if hour_feats else np.empty(0, np.float64)
        )
        for name in FEATURES
    }
    stats = _stats_frame(np.tile(driver_idx, len(hours)), event_s, created_s, stacked)

    parts = _DirtyParts()
    if config.scenario == Scenario.DIRTY:
        for i, hour in enumerate(hours):
            _dirty_hour(
                world,
                int(hour),
                i * n,
                hour_feats[i],
                lags[i],
                config.dirty_rates,
                config.seed,
                parts,
            )
        stats = _apply_dirt(stats, parts)

    bookings, candidates = _bookings(config, hours, hour_feats)
    return ExampleData(
        config=config,
        driver_hourly_stats=stats,
        bookings=bookings,
        booking_candidates=candidates,
        dirty_manifest=_build_manifest(parts),
    )


def _apply_dirt(stats: pd.DataFrame, parts: _DirtyParts) -> pd.DataFrame:
    """Apply in-place defects and insert the extra rows after their delivery hour's rows."""
    stats = stats.copy()
    null_rows = np.concatenate(parts.null_rows) if parts.null_rows else np.empty(0, np.int64)
    null_cols = np.concatenate(parts.null_cols) if parts.null_cols else np.empty(0, np.int64)
    oor_rows = np.concatenate(parts.oor_rows) if parts.oor_rows else np.empty(0, np.int64)
    oor_cols = np.concatenate(parts.oor_cols) if parts.oor_cols else np.empty(0, np.int64)
    oor_values = np.concatenate(parts.oor_values) if parts.oor_values else np.empty(0, np.float64)
    for c, name in enumerate(FEATURES):
        values = stats[name].to_numpy(copy=True)
        if name == "avg_daily_trips":
            hit = oor_cols == c
            values[oor_rows[hit]] = oor_values[hit].astype(np.int64)
        else:
            values[null_rows[null_cols == c]] = np.nan
            hit = oor_cols == c
            values[oor_rows[hit]] = oor_values[hit]
        stats[name] = values
    if not parts.extra:
        return stats
    # Order: per delivery hour, that hour's regular rows, then its duplicates and late rows.
    stats["_hour"] = stats["created"].dt.floor("h")
    stats["_order"] = 0
    extra = _stats_frame(
        np.concatenate([e[0] for e in parts.extra]),
        np.concatenate([e[1] for e in parts.extra]),
        np.concatenate([e[2] for e in parts.extra]),
        {name: np.concatenate([e[3][name] for e in parts.extra]) for name in FEATURES},
    )
    extra["_hour"] = extra["created"].dt.floor("h")
    extra["_order"] = 1
    merged = pd.concat([stats, extra], ignore_index=True)
    merged = merged.sort_values(["_hour", "_order"], kind="stable")
    return SCHEMAS[DRIVER_HOURLY_STATS].conform(merged.drop(columns=["_hour", "_order"]))
