"""The example's storage (the source ``example``): both stores round-trip every table and are
idempotent when a slice is written again; the settings choose the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from example_project.settings import ExampleProjectSettings
from example_project.storage import (
    LocalFileSource,
    PostgresSource,
    open_example_source,
    write_example_data,
)
from example_project.world.config import DirtyRates, ExampleSourceConfig
from example_project.world.generator import ExampleData, generate
from mlops_common.postgres import ensure_database, make_engine
from mlops_common.sources import (
    SCHEMAS,
    TABLES,
    Source,
    SourceReader,
    SourceSettings,
    SourceWriter,
    open_source,
)

Factory = Callable[..., ExampleSourceConfig]


def _expected(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    key = list(SCHEMAS[table].sort_key)
    return frame.sort_values(key, kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def dirty_data() -> ExampleData:
    """Dirty data: nulls, out-of-range values, extra and late rows must all survive the trip."""
    return generate(
        ExampleSourceConfig(
            seed=11,
            n_drivers=80,
            start=datetime(2024, 3, 1, tzinfo=UTC),
            end=datetime(2024, 3, 2, 6, tzinfo=UTC),
            bookings_per_hour=6,
            scenario="dirty",
            dirty_rates=DirtyRates(late=0.05),
        )
    )


def _assert_round_trip(source: Source, data: ExampleData) -> None:
    config = data.config
    for table, frame in data.tables().items():
        back = source.read(table, config.start, config.end)
        pd.testing.assert_frame_equal(back, _expected(table, frame), check_exact=True)


def _assert_slice_reads(source: Source, data: ExampleData) -> None:
    """A read returns the rows *delivered* in the window: late rows appear in their delivery
    hour even though their event_timestamp is older than the window."""
    lo = data.config.start + timedelta(hours=5)
    hi = lo + timedelta(hours=3)
    stats = source.read("driver_hourly_stats", lo, hi)
    frame = data.driver_hourly_stats
    expected = frame[(frame["created"] >= lo) & (frame["created"] < hi)]
    pd.testing.assert_frame_equal(stats, _expected("driver_hourly_stats", expected))
    manifest = data.dirty_manifest
    late_here = manifest[
        (manifest["defect"] == "late") & (manifest["created"] >= lo) & (manifest["created"] < hi)
    ]
    assert len(late_here) > 0
    assert (stats["event_timestamp"] < lo).sum() == len(late_here)
    bookings = source.read("bookings", lo, hi)
    assert len(bookings) == 3 * data.config.bookings_per_hour
    # windows need not be hour-aligned
    mid = lo + timedelta(minutes=30)
    half = source.read("bookings", lo, mid)
    assert (half["event_timestamp"] < mid).all() and 0 < len(half) < len(bookings) / 3 + 1


def _assert_empty_read(source: Source) -> None:
    far = datetime(2030, 1, 1, tzinfo=UTC)
    for table in TABLES:
        empty = source.read(table, far, far + timedelta(hours=2))
        assert empty.empty
        assert {c: str(t) for c, t in empty.dtypes.items()} == SCHEMAS[table].columns


# ------------------------------------------------------------------------------------ local files


def test_local_files_round_trip(tmp_path: Path, dirty_data: ExampleData) -> None:
    source = LocalFileSource(tmp_path / "src")
    assert isinstance(source, SourceWriter) and isinstance(source, SourceReader)
    assert isinstance(source, Source)  # the whole contract: location and close too
    counts = write_example_data(source, dirty_data)
    assert counts == {t: len(f) for t, f in dirty_data.tables().items()}
    _assert_round_trip(source, dirty_data)
    _assert_slice_reads(source, dirty_data)
    _assert_empty_read(source)


def test_local_files_layout(tmp_path: Path, dirty_data: ExampleData) -> None:
    source = LocalFileSource(tmp_path)
    write_example_data(source, dirty_data)
    hours = dirty_data.config.n_hours
    for table in TABLES:
        files = sorted((tmp_path / table).glob("date=*/part-*.parquet"))
        assert len(files) == hours, table
    assert (tmp_path / "bookings" / "date=2024-03-02" / "part-20240302T05.parquet").is_file()
    assert not list(tmp_path.rglob(".tmp-*"))


def test_local_files_rewrite_is_idempotent(tmp_path: Path, small_config: Factory) -> None:
    source = LocalFileSource(tmp_path)
    config = small_config(scenario="dirty")
    whole = generate(config)
    write_example_data(source, whole)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.parquet")}
    # write an overlapping slice again, then the whole period once more
    write_example_data(
        source, generate(config.with_period(config.start + timedelta(hours=3), config.end))
    )
    write_example_data(source, whole)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*.parquet")}
    assert after.keys() == before.keys()
    _assert_round_trip(source, whole)


def test_local_write_replaces_the_hour(tmp_path: Path, small_config: Factory) -> None:
    source = LocalFileSource(tmp_path)
    config = small_config()
    data = generate(config)
    write_example_data(source, data)
    hour = data.bookings[data.bookings["event_timestamp"] < config.start + timedelta(hours=1)]
    changed = hour.assign(trip_completed=~hour["trip_completed"])
    source.write("bookings", changed)
    back = source.read("bookings", config.start, config.start + timedelta(hours=1))
    pd.testing.assert_frame_equal(back, _expected("bookings", changed))


def test_unknown_table_and_missing_columns_are_refused(tmp_path: Path) -> None:
    source = LocalFileSource(tmp_path)
    with pytest.raises(ValueError, match="unknown table 'orders'"):
        source.read("orders", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC))
    with pytest.raises(ValueError, match="missing columns"):
        source.write("bookings", pd.DataFrame({"booking_id": ["x"]}))


# -------------------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_source(pg_database: str) -> Iterator[PostgresSource]:
    source = PostgresSource(pg_database)
    yield source
    source.close()


@pytest.mark.integration
def test_postgres_round_trip(pg_source: PostgresSource, dirty_data: ExampleData) -> None:
    assert isinstance(pg_source, Source)
    counts = write_example_data(pg_source, dirty_data)
    assert counts == {t: len(f) for t, f in dirty_data.tables().items()}
    _assert_round_trip(pg_source, dirty_data)
    _assert_slice_reads(pg_source, dirty_data)
    _assert_empty_read(pg_source)


@pytest.mark.integration
def test_postgres_tables_have_primary_keys(pg_source: PostgresSource) -> None:
    pg_source.create_tables()
    with pg_source.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT tc.table_name, kcu.column_name "
                "FROM information_schema.table_constraints tc "
                "JOIN information_schema.key_column_usage kcu "
                "ON tc.constraint_name = kcu.constraint_name "
                "AND tc.table_schema = kcu.table_schema "
                "WHERE tc.table_schema = 'source' AND tc.constraint_type = 'PRIMARY KEY' "
                "ORDER BY tc.table_name, kcu.ordinal_position"
            )
        ).all()
    keys: dict[str, list[str]] = {}
    for table, column in rows:
        keys.setdefault(table, []).append(column)
    assert keys == {t: list(SCHEMAS[t].primary_key) for t in TABLES}


@pytest.mark.integration
def test_postgres_rewrite_is_idempotent_and_upserts(
    pg_source: PostgresSource, small_config: Factory
) -> None:
    config = small_config(scenario="dirty")
    whole = generate(config)
    write_example_data(pg_source, whole)
    write_example_data(
        pg_source, generate(config.with_period(config.start + timedelta(hours=3), config.end))
    )
    write_example_data(pg_source, whole)
    with pg_source.engine.connect() as conn:
        for table, frame in whole.tables().items():
            count = conn.execute(text(f"SELECT count(*) FROM source.{table}")).scalar_one()
            assert count == len(frame), table
    _assert_round_trip(pg_source, whole)

    # an upsert replaces the values of existing keys
    first = whole.bookings.iloc[:5]
    changed = first.assign(trip_completed=~first["trip_completed"], true_p=0.5)
    pg_source.write("bookings", changed)
    back = pg_source.read("bookings", config.start, config.end)
    assert len(back) == len(whole.bookings)
    got = back.set_index("booking_id").loc[changed["booking_id"]]
    assert (got["trip_completed"].to_numpy() == changed["trip_completed"].to_numpy()).all()
    assert (got["true_p"] == 0.5).all()


@pytest.mark.integration
def test_postgres_refuses_repeated_keys_in_one_write(pg_source: PostgresSource) -> None:
    frame = pd.DataFrame(
        {
            "booking_id": ["x", "x"],
            "event_timestamp": pd.to_datetime(["2024-01-01T00:10Z", "2024-01-01T00:20Z"]),
            "driver_id": [1001, 1002],
            "trip_completed": [True, False],
            "true_p": [0.5, 0.5],
        }
    )
    with pytest.raises(ValueError, match="repeat a primary key"):
        pg_source.write("bookings", frame)


@pytest.mark.integration
def test_ensure_database_creates_once(pg_database: str) -> None:
    from sqlalchemy.engine import make_url

    name = make_url(pg_database).database
    assert name is not None and name.startswith("mlops_test_")
    server = make_url(pg_database).set(database=None).render_as_string(hide_password=False)
    assert ensure_database(server, name) is False  # exists already: no error, nothing created
    engine = make_engine(pg_database)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT current_database()")).scalar_one() == name
    engine.dispose()


def _settings(**values: object) -> ExampleProjectSettings:
    return ExampleProjectSettings(_env_file=None, **values)  # type: ignore[call-arg]


def test_the_settings_choose_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    local = open_example_source(_settings())
    assert isinstance(local, LocalFileSource) and local.root == tmp_path / ".mlops" / "source"
    assert local.location == str(tmp_path / ".mlops" / "source")
    local = open_example_source(_settings(mlops_data_dir=tmp_path / "state"))
    assert isinstance(local, LocalFileSource) and local.root == tmp_path / "state" / "source"
    # the location of a database names it without the password
    remote = PostgresSource("postgresql://postgres:s3cret@db.example:5432/mlops_data")
    assert "s3cret" not in remote.location and "db.example:5432/mlops_data" in remote.location
    assert remote.location.endswith("(schema source)")
    remote.close()


def test_it_is_the_platforms_default_source(tmp_path: Path) -> None:
    """``MLOPS_SOURCE`` unset: the core's ``open_source`` reaches this storage through the entry
    point ``example`` (no import of this package by the core)."""
    settings = SourceSettings(_env_file=None, mlops_data_dir=tmp_path)  # type: ignore[call-arg]
    assert settings.mlops_source == "example"
    source = open_source(settings)
    assert isinstance(source, LocalFileSource) and source.root == tmp_path / "source"


@pytest.mark.integration
def test_open_source_follows_the_settings(tmp_path: Path, pg_database: str) -> None:
    from sqlalchemy.engine import make_url

    local = open_example_source(_settings(mlops_data_dir=tmp_path))
    assert isinstance(local, LocalFileSource) and local.root == tmp_path / "source"
    url = make_url(pg_database)
    server = url.set(database=None).render_as_string(hide_password=False)
    # a database in the server URL is replaced by the data database <prefix>_data
    remote = open_example_source(
        _settings(
            mlops_database_url=f"{server}/other",
            mlops_database_prefix=(url.database or "").removesuffix("_data"),
        )
    )
    assert isinstance(remote, PostgresSource)
    assert remote.url.database == url.database
    assert "(schema source)" in remote.location
    remote.close()
