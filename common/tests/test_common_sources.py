"""The source contract (``mlops_common.sources``): table schemas, and the configured source found
through the entry point group ``mlops.sources`` by its name, never by importing its package."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlops_common import sources
from mlops_common.settings import PlatformSettings
from mlops_common.sources import (
    BOOKINGS,
    DRIVER_HOURLY_STATS,
    ENTRY_POINT_GROUP,
    SCHEMAS,
    Source,
    SourceNotFound,
    SourceSettings,
    open_source,
    schema,
)


class MemorySource:
    """A source kept in memory: what a company's own source package would register."""

    opened_with: PlatformSettings | None = None

    def __init__(self) -> None:
        self.tables: dict[str, pd.DataFrame] = {}

    @property
    def location(self) -> str:
        return "memory"

    def close(self) -> None:
        pass

    def write(self, table: str, frame: pd.DataFrame) -> int:
        self.tables[table] = schema(table).conform(frame)
        return len(frame)

    def read(self, table: str, start: datetime, end: datetime) -> pd.DataFrame:
        frame = self.tables.get(table, schema(table).empty())
        column = frame[schema(table).slice_column]
        return frame[(column >= start) & (column < end)].reset_index(drop=True)


def memory_source(settings: PlatformSettings) -> MemorySource:
    MemorySource.opened_with = settings
    return MemorySource()


def _settings(**values: Any) -> SourceSettings:
    return SourceSettings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed entry points plus ``memory`` (this module's factory)."""
    installed = sources.entry_points

    def entry_points(**selection: str) -> list[EntryPoint]:
        found = list(installed(**selection))
        memory = EntryPoint("memory", f"{__name__}:memory_source", ENTRY_POINT_GROUP)
        if selection.get("group") == ENTRY_POINT_GROUP and selection.get("name") in (
            None,
            "memory",
        ):
            found.append(memory)
        return found

    monkeypatch.setattr(sources, "entry_points", entry_points)


def test_a_source_is_found_by_its_entry_point_name(registered: None, tmp_path: Path) -> None:
    settings = _settings(mlops_source="memory", mlops_data_dir=tmp_path)
    source = open_source(settings)
    assert isinstance(source, MemorySource) and isinstance(source, Source)
    assert MemorySource.opened_with is settings
    rows = pd.DataFrame(
        {
            "booking_id": ["a", "b"],
            "event_timestamp": ["2024-01-01T00:10Z", "2024-01-01T01:10Z"],
            "driver_id": [1001, 1002],
            "trip_completed": [True, False],
            "true_p": [0.7, 0.4],
        }
    )
    assert source.write(BOOKINGS, rows) == 2
    hour = source.read(
        BOOKINGS, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 1, tzinfo=UTC)
    )
    assert hour["booking_id"].tolist() == ["a"]


def test_the_default_source_is_the_installed_example() -> None:
    assert _settings().mlops_source == "example"
    names = {ep.name for ep in sources.entry_points(group=ENTRY_POINT_GROUP)}
    assert "example" in names


def test_an_unknown_source_is_refused_naming_the_installed_ones(
    registered: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_SOURCE", "acme")
    with pytest.raises(SourceNotFound, match=r"MLOPS_SOURCE='acme': no installed source") as exc:
        open_source(SourceSettings(_env_file=None))  # type: ignore[call-arg]
    assert "installed: example, memory" in str(exc.value)


def test_conform_casts_to_the_schema_and_refuses_missing_columns() -> None:
    stats = SCHEMAS[DRIVER_HOURLY_STATS]
    frame = pd.DataFrame(
        {
            "extra": [1],
            "cancel_rate": [0.1],
            "rating": [4],
            "avg_daily_trips": [12.0],
            "acc_rate": [0.5],
            "conv_rate": [0.5],
            "created": ["2024-01-01T00:05:00+01:00"],
            "event_timestamp": [pd.Timestamp("2024-01-01")],
            "driver_id": [1001],
        }
    )
    out = stats.conform(frame)
    assert list(out.columns) == list(stats.columns)
    assert {c: str(t) for c, t in out.dtypes.items()} == stats.columns
    assert out["created"][0] == pd.Timestamp("2023-12-31T23:05Z")
    assert stats.empty().empty and list(stats.empty().columns) == list(stats.columns)
    with pytest.raises(ValueError, match=r"driver_hourly_stats: missing columns \['driver_id'\]"):
        stats.conform(frame.drop(columns="driver_id"))
    with pytest.raises(ValueError, match="unknown table 'orders'"):
        schema("orders")
