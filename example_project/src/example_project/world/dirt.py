"""The ``dirty`` scenario: defects in the delivered driver statistics, and their manifest.

Per delivery hour, with the rates of ``DirtyRates`` (each count Binomial(n_drivers, rate)):

- ``null_value``: a float feature of a row set to null;
- ``out_of_range``: a feature of a row set outside its valid range;
- ``duplicate``: a clean row delivered again later in the hour;
- ``late``: a clean row of 2-72 hours earlier delivered again in this hour.

In-place defects (nulls, bad values) hit disjoint rows; duplicates copy rows that stay clean. The
manifest lists every defect, keyed by the dirty row's ``(driver_id, event_timestamp, created)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from example_project.world.completion import FEATURES, FloatArray
from example_project.world.config import DRIVER_ID_OFFSET, DirtyRates
from example_project.world.drivers import N_FEATURES, STREAM_DIRTY, IntArray, seeded_rng
from example_project.world.hourly import (
    MAX_CREATED_LAG_S,
    SECONDS_PER_HOUR,
    HourlyDrivers,
    seconds_to_ts,
    stats_frame,
)
from mlops_common.sources import DRIVER_HOURLY_STATS, SCHEMAS, TIMESTAMP

# Float features that the dirty scenario may null out (avg_daily_trips stays int64, never null).
_NULLABLE_FEATURES = ("conv_rate", "acc_rate", "rating", "cancel_rate")

#: Columns of the dirty-row manifest returned with the ``dirty`` scenario.
MANIFEST_COLUMNS: dict[str, str] = {
    "table": "object",
    "driver_id": "int64",
    "event_timestamp": TIMESTAMP,
    "created": TIMESTAMP,
    "defect": "object",
    "column": "object",
    "detail": "object",
}


@dataclass
class DirtyParts:
    """Defects of every hour: in-place value changes plus extra rows, and the manifest rows."""

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


@dataclass(frozen=True)
class _HourDraws:
    """The random draws of one hour's defects."""

    null_rows: IntArray
    null_cols: IntArray  # into _NULLABLE_FEATURES
    oor_rows: IntArray
    oor_cols: IntArray  # into FEATURES
    oor_upper: npt.NDArray[np.bool_]
    oor_mag: FloatArray
    dup_rows: IntArray
    dup_extra_lag: IntArray
    late_drivers: IntArray
    late_age: IntArray
    late_created: IntArray


def _draw(n: int, rates: DirtyRates, rng: np.random.Generator) -> _HourDraws:
    """Every draw of one hour, in one fixed order: never reorder (it would change the data)."""
    n_null = int(rng.binomial(n, rates.null))
    n_oor = int(rng.binomial(n, rates.out_of_range))
    n_dup = int(rng.binomial(n, rates.duplicate))
    n_late = int(rng.binomial(n, rates.late))
    perm = rng.permutation(n)
    n_null = min(n_null, n)
    n_oor = min(n_oor, n - n_null)
    n_dup = min(n_dup, n - n_null - n_oor)
    return _HourDraws(
        null_rows=perm[:n_null],
        oor_rows=perm[n_null : n_null + n_oor],
        dup_rows=perm[n_null + n_oor : n_null + n_oor + n_dup],
        null_cols=rng.integers(0, len(_NULLABLE_FEATURES), size=n_null),
        oor_cols=rng.integers(0, N_FEATURES, size=n_oor),
        oor_upper=rng.random(n_oor) < 0.5,
        oor_mag=rng.random(n_oor),
        dup_extra_lag=rng.integers(60, SECONDS_PER_HOUR - MAX_CREATED_LAG_S, size=n_dup),
        late_drivers=rng.integers(0, n, size=n_late),
        late_age=rng.integers(2, 73, size=n_late),
        late_created=rng.integers(0, SECONDS_PER_HOUR, size=n_late),
    )


def _entry(
    driver_idx: int, event_s: int, created_s: int, defect: str, column: str | None, detail: str
) -> dict[str, Any]:
    return {
        "driver_idx": driver_idx,
        "event_s": event_s,
        "created_s": created_s,
        "defect": defect,
        "column": column,
        "detail": detail,
    }


def _out_of_range_value(column: str, upper: bool, magnitude: float) -> float:
    if column == "avg_daily_trips":
        return float(-(1 + math.floor(magnitude * 20)))
    if column == "rating":
        return round(5.1 + 4.0 * magnitude, 2) if upper else round(0.9 * magnitude, 2)
    return round(1.05 + 0.5 * magnitude, 4) if upper else round(-0.05 - 0.5 * magnitude, 4)


def _nulls(
    draws: _HourDraws, hour_s: int, row_offset: int, lag: IntArray, parts: DirtyParts
) -> list[dict[str, Any]]:
    position = {name: i for i, name in enumerate(FEATURES)}
    cols = np.array([position[_NULLABLE_FEATURES[c]] for c in draws.null_cols], np.int64)
    parts.null_rows.append(row_offset + draws.null_rows.astype(np.int64))
    parts.null_cols.append(cols)
    return [
        _entry(
            int(r),
            hour_s,
            hour_s + int(lag[r]),
            "null_value",
            FEATURES[c],
            f"{FEATURES[c]} is null",
        )
        for r, c in zip(draws.null_rows, cols, strict=True)
    ]


def _out_of_range(
    draws: _HourDraws, hour_s: int, row_offset: int, lag: IntArray, parts: DirtyParts
) -> list[dict[str, Any]]:
    values = np.array(
        [
            _out_of_range_value(FEATURES[c], bool(u), float(m))
            for c, u, m in zip(draws.oor_cols, draws.oor_upper, draws.oor_mag, strict=True)
        ],
        dtype=np.float64,
    )
    parts.oor_rows.append(row_offset + draws.oor_rows.astype(np.int64))
    parts.oor_cols.append(draws.oor_cols.astype(np.int64))
    parts.oor_values.append(values)
    entries = []
    for r, c, v in zip(draws.oor_rows, draws.oor_cols, values, strict=True):
        shown = int(v) if FEATURES[c] == "avg_daily_trips" else float(v)
        detail = f"{FEATURES[c]}={shown} outside its valid range"
        entries.append(
            _entry(int(r), hour_s, hour_s + int(lag[r]), "out_of_range", FEATURES[c], detail)
        )
    return entries


def _duplicates(
    draws: _HourDraws, hour_s: int, feats: dict[str, FloatArray], lag: IntArray, parts: DirtyParts
) -> list[dict[str, Any]]:
    rows = draws.dup_rows
    created = hour_s + lag[rows] + draws.dup_extra_lag
    if len(rows):
        parts.extra.append(
            (
                rows.astype(np.int64),
                np.full(len(rows), hour_s, np.int64),
                created.astype(np.int64),
                {name: feats[name][rows] for name in FEATURES},
            )
        )
    detail = "second delivery of the same driver and hour"
    return [
        _entry(int(r), hour_s, int(cs), "duplicate", None, detail)
        for r, cs in zip(rows, created, strict=True)
    ]


def _late(
    world: HourlyDrivers, hour: int, draws: _HourDraws, parts: DirtyParts
) -> list[dict[str, Any]]:
    if not len(draws.late_drivers):
        return []
    hour_s = hour * SECONDS_PER_HOUR
    late_feats: dict[str, list[float]] = {name: [] for name in FEATURES}
    for drv, age in zip(draws.late_drivers, draws.late_age, strict=True):
        old = world.features(hour - int(age))
        for name in FEATURES:
            late_feats[name].append(float(old[name][drv]))
    parts.extra.append(
        (
            draws.late_drivers.astype(np.int64),
            (hour - draws.late_age.astype(np.int64)) * SECONDS_PER_HOUR,
            hour_s + draws.late_created.astype(np.int64),
            {name: np.asarray(v, dtype=np.float64) for name, v in late_feats.items()},
        )
    )
    return [
        _entry(
            int(drv),
            (hour - int(age)) * SECONDS_PER_HOUR,
            hour_s + int(lc),
            "late",
            None,
            f"event_timestamp {int(age)} h before its delivery hour",
        )
        for drv, age, lc in zip(draws.late_drivers, draws.late_age, draws.late_created, strict=True)
    ]


def dirty_hour(
    world: HourlyDrivers,
    hour: int,
    row_offset: int,
    lag: IntArray,
    rates: DirtyRates,
    parts: DirtyParts,
) -> None:
    """Draw the defects of ``hour`` (its clean rows start at ``row_offset`` of the stats, their
    delivery lags are ``lag``) into ``parts``."""
    draws = _draw(world.n_drivers, rates, seeded_rng(world.seed, STREAM_DIRTY, hour))
    hour_s = hour * SECONDS_PER_HOUR
    manifest = [
        *_nulls(draws, hour_s, row_offset, lag, parts),
        *_out_of_range(draws, hour_s, row_offset, lag, parts),
        *_duplicates(draws, hour_s, world.features(hour), lag, parts),
        *_late(world, hour, draws, parts),
    ]
    if manifest:
        parts.manifest.append(pd.DataFrame(manifest))


def build_manifest(parts: DirtyParts) -> pd.DataFrame:
    """The manifest of every defect (``MANIFEST_COLUMNS``; empty without defects)."""
    if not parts.manifest:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in MANIFEST_COLUMNS.items()})
    raw = pd.concat(parts.manifest, ignore_index=True)
    frame = pd.DataFrame(
        {
            "table": DRIVER_HOURLY_STATS,
            "driver_id": raw["driver_idx"].astype(np.int64) + DRIVER_ID_OFFSET,
            "event_timestamp": seconds_to_ts(raw["event_s"].to_numpy(np.int64)),
            "created": seconds_to_ts(raw["created_s"].to_numpy(np.int64)),
            "defect": raw["defect"],
            "column": raw["column"],
            "detail": raw["detail"],
        }
    )
    return frame.astype(MANIFEST_COLUMNS)


def _concat(arrays: list[npt.NDArray[Any]], dtype: type[np.generic]) -> npt.NDArray[Any]:
    return np.concatenate(arrays) if arrays else np.empty(0, dtype)


def apply_dirt(stats: pd.DataFrame, parts: DirtyParts) -> pd.DataFrame:
    """Apply in-place defects and insert the extra rows after their delivery hour's rows."""
    stats = stats.copy()
    null_rows = _concat(parts.null_rows, np.int64)
    null_cols = _concat(parts.null_cols, np.int64)
    oor_rows = _concat(parts.oor_rows, np.int64)
    oor_cols = _concat(parts.oor_cols, np.int64)
    oor_values = _concat(parts.oor_values, np.float64)
    for c, name in enumerate(FEATURES):
        values = stats[name].to_numpy(copy=True)
        hit = oor_cols == c
        if name == "avg_daily_trips":
            values[oor_rows[hit]] = oor_values[hit].astype(np.int64)
        else:
            values[null_rows[null_cols == c]] = np.nan
            values[oor_rows[hit]] = oor_values[hit]
        stats[name] = values
    if not parts.extra:
        return stats
    # Order: per delivery hour, that hour's regular rows, then its duplicates and late rows.
    stats["_hour"] = stats["created"].dt.floor("h")
    stats["_order"] = 0
    extra = stats_frame(
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
