"""Schemas of the example source tables: columns, pandas dtypes, keys and delivery slicing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TIMESTAMP = "datetime64[ns, UTC]"
_TIMESTAMP_DTYPE = pd.DatetimeTZDtype(unit="ns", tz="UTC")

DRIVER_HOURLY_STATS = "driver_hourly_stats"
BOOKINGS = "bookings"
BOOKING_CANDIDATES = "booking_candidates"


@dataclass(frozen=True)
class TableSchema:
    """One source table.

    ``slice_column`` is the timestamp that decides which hourly delivery slice a row belongs to:
    a sink stores a row in the partition of ``floor(slice_column, hour)`` and ``read(table, start,
    end)`` returns the rows with ``start <= slice_column < end``. For ``driver_hourly_stats`` that
    is ``created`` (when the row was delivered), so a late row — old ``event_timestamp``, recent
    ``created`` — shows up in the slice it arrived in, where validation can catch it.
    """

    name: str
    columns: dict[str, str]
    primary_key: tuple[str, ...]
    slice_column: str
    #: the order in which readers return rows
    sort_key: tuple[str, ...]

    def empty(self) -> pd.DataFrame:
        return self.conform(pd.DataFrame({c: pd.Series(dtype="object") for c in self.columns}))

    def conform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Select the schema's columns in order and cast them to the schema's dtypes."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{self.name}: missing columns {missing}")
        out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
        for column, dtype in self.columns.items():
            values = frame[column].reset_index(drop=True)
            if dtype == TIMESTAMP:
                values = pd.to_datetime(values, utc=True).astype(_TIMESTAMP_DTYPE)
            else:
                values = values.astype(np.dtype(dtype))
            out[column] = values
        return out


SCHEMAS: dict[str, TableSchema] = {
    DRIVER_HOURLY_STATS: TableSchema(
        name=DRIVER_HOURLY_STATS,
        columns={
            "driver_id": "int64",
            "event_timestamp": TIMESTAMP,
            "created": TIMESTAMP,
            "conv_rate": "float64",
            "acc_rate": "float64",
            "avg_daily_trips": "int64",
            "rating": "float64",
            "cancel_rate": "float64",
        },
        # `created` is part of the key: a re-delivered row (same driver and hour) is another row.
        primary_key=("driver_id", "event_timestamp", "created"),
        slice_column="created",
        sort_key=("event_timestamp", "driver_id", "created"),
    ),
    BOOKINGS: TableSchema(
        name=BOOKINGS,
        columns={
            "booking_id": "object",
            "event_timestamp": TIMESTAMP,
            "driver_id": "int64",
            "trip_completed": "bool",
            "true_p": "float64",
        },
        primary_key=("booking_id",),
        slice_column="event_timestamp",
        sort_key=("event_timestamp", "booking_id"),
    ),
    BOOKING_CANDIDATES: TableSchema(
        name=BOOKING_CANDIDATES,
        columns={
            "booking_id": "object",
            "event_timestamp": TIMESTAMP,
            "driver_id": "int64",
            "position": "int64",
            "is_assigned": "bool",
            "true_p": "float64",
            "completed_if_assigned": "bool",
        },
        primary_key=("booking_id", "driver_id"),
        slice_column="event_timestamp",
        sort_key=("event_timestamp", "booking_id", "position"),
    ),
}

TABLES: tuple[str, ...] = tuple(SCHEMAS)

#: Columns that carry the ground truth. They exist for evaluation only: a model must never see them.
GROUND_TRUTH_COLUMNS: frozenset[str] = frozenset({"true_p", "completed_if_assigned"})

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


def schema(table: str) -> TableSchema:
    try:
        return SCHEMAS[table]
    except KeyError:
        raise ValueError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}") from None
