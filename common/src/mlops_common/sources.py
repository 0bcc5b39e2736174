"""The company's raw data as the platform's core sees it: the tables it reads, and the source.

A *source* is where a company's raw data lives: its driver statistics as they are delivered, its
labelled bookings and their candidate sets. The platform's core (the data pipeline's batch steps,
the training pipeline's labels) reads it only through this contract and never imports a source's
package: a process gets the source that ``MLOPS_SOURCE`` names (default ``example``, the example
project that ships with the platform) with ``open_source(settings)``, which looks the name up in
the Python entry point group ``mlops.sources``. A source package registers a factory there,
``(settings: PlatformSettings) -> Source``::

    [project.entry-points."mlops.sources"]
    example = "example_project.storage:open_example_source"

The tables (``SCHEMAS``; one definition, written by a source and read by the core):

- ``driver_hourly_stats``: a driver's statistics at a whole hour, sliced by ``created`` (when the
  row was *delivered*), so a late row shows up in the slice it arrived in, where validation can
  catch it;
- ``bookings``: labelled events (``trip_completed``), sliced by ``event_timestamp``;
- ``booking_candidates``: every booking's candidate set with each candidate's outcome, sliced by
  ``event_timestamp``.

``read(table, start, end)`` returns the rows with ``start <= slice_column < end``, with the
schema's dtypes, sorted by the table's ``sort_key``; ``write(table, frame)`` stores rows
idempotently (writing the same rows again leaves the same content).

Needs pandas (and numpy) only to conform frames; they are imported where used, so this module
stays importable in ``mlops_common``'s base install.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import AliasChoices, Field

from mlops_common.settings import PlatformSettings

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

#: The entry point group where source packages register their factories.
ENTRY_POINT_GROUP = "mlops.sources"
#: The source of a platform that configures none: the example project.
DEFAULT_SOURCE = "example"

#: pandas dtype name of every timestamp column (aware, UTC)
TIMESTAMP = "datetime64[ns, UTC]"

DRIVER_HOURLY_STATS = "driver_hourly_stats"
BOOKINGS = "bookings"
BOOKING_CANDIDATES = "booking_candidates"


@dataclass(frozen=True)
class TableSchema:
    """One source table.

    ``slice_column`` is the timestamp that decides which hourly delivery slice a row belongs to:
    ``read(table, start, end)`` returns the rows with ``start <= slice_column < end``.
    """

    name: str
    columns: dict[str, str]
    primary_key: tuple[str, ...]
    slice_column: str
    #: the order in which readers return rows
    sort_key: tuple[str, ...]

    def empty(self) -> pd.DataFrame:
        import pandas as pd

        return self.conform(pd.DataFrame({c: pd.Series(dtype="object") for c in self.columns}))

    def conform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Select the schema's columns in order and cast them to the schema's dtypes."""
        import numpy as np
        import pandas as pd

        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{self.name}: missing columns {missing}")
        timestamp = pd.DatetimeTZDtype(unit="ns", tz="UTC")
        out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
        for column, dtype in self.columns.items():
            values = frame[column].reset_index(drop=True)
            if dtype == TIMESTAMP:
                values = pd.to_datetime(values, utc=True).astype(timestamp)
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


def schema(table: str) -> TableSchema:
    """The schema of ``table``; ValueError naming the known tables otherwise."""
    try:
        return SCHEMAS[table]
    except KeyError:
        raise ValueError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}") from None


@runtime_checkable
class SourceWriter(Protocol):
    def write(self, table: str, frame: pd.DataFrame) -> int:
        """Store ``frame`` (rows of ``table``); return the number of rows written."""
        ...


@runtime_checkable
class SourceReader(Protocol):
    def read(self, table: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Rows of ``table`` delivered in ``[start, end)`` (see the module docstring)."""
        ...


@runtime_checkable
class Source(SourceWriter, SourceReader, Protocol):
    """A source the core reads and a producer writes; ``close`` releases its connections."""

    @property
    def location(self) -> str:
        """Where the source is, for people (no password)."""
        ...

    def close(self) -> None: ...


class SourceSettings(PlatformSettings):
    """Which source a process reads: ``MLOPS_SOURCE`` (an entry point name of ``mlops.sources``)."""

    mlops_source: str = Field(
        default=DEFAULT_SOURCE, min_length=1, validation_alias=AliasChoices("MLOPS_SOURCE")
    )


class SourceNotFound(LookupError):
    """``MLOPS_SOURCE`` names no installed source."""


def source_factory(name: str) -> Callable[[PlatformSettings], Source]:
    """The factory registered as ``name`` in the entry point group ``mlops.sources``."""
    found = list(entry_points(group=ENTRY_POINT_GROUP, name=name))
    if len(found) != 1:
        installed = sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})
        problem = "no installed source" if not found else f"{len(found)} installed sources"
        raise SourceNotFound(
            f"MLOPS_SOURCE={name!r}: {problem} of that name in the entry point group "
            f"{ENTRY_POINT_GROUP} (installed: {', '.join(installed) or 'none'})"
        )
    factory: Callable[[PlatformSettings], Source] = found[0].load()
    return factory


def open_source(settings: SourceSettings | None = None) -> Source:
    """The configured source (``settings.mlops_source``), opened with ``settings``; close it
    after use (``contextlib.closing``)."""
    settings = settings or SourceSettings.load()
    return source_factory(settings.mlops_source)(settings)
