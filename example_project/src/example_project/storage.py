"""Where the example company keeps its raw data: partitioned parquet files or a PostgreSQL schema.

This is the source ``example`` of the platform (entry point group ``mlops.sources``, see
``mlops_common.sources``): ``open_example_source(settings)`` is what ``open_source`` calls when
``MLOPS_SOURCE=example`` (the default), and what the example's own writers (``emit``, ``cli``)
use. With ``MLOPS_DATABASE_URL`` set the data is in the database ``<MLOPS_DATABASE_PREFIX>_data``
(created when absent), else in ``<MLOPS_DATA_DIR>/source``.

Both stores keep rows by *delivery hour*, ``floor(slice_column, hour)`` (see
``mlops_common.sources.TableSchema``), and both are idempotent: writing the same slice again
leaves the same content.

- ``LocalFileSource``: ``<root>/<table>/date=YYYY-MM-DD/part-YYYYMMDDTHH.parquet``, one file per
  delivery hour. A write replaces the files of the hours it touches (atomically, via rename).
- ``PostgresSource``: tables in schema ``source`` with primary keys; a write upserts (``INSERT …
  ON CONFLICT DO UPDATE``) in one transaction. Feature columns are nullable and unconstrained: the
  source holds raw data, validation happens downstream.

``read(table, start, end)`` returns the rows with ``start <= slice_column < end``, with the schema's
dtypes, sorted by the table's ``sort_key``.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import URL

from mlops_common.postgres import database_url as postgres_url
from mlops_common.postgres import ensure_database, make_engine
from mlops_common.settings import PlatformSettings
from mlops_common.sources import TABLES, TIMESTAMP, SourceWriter, TableSchema, schema

if TYPE_CHECKING:
    from example_project.world.generator import ExampleData

#: the PostgreSQL schema of the tables
SOURCE_SCHEMA = "source"
#: the component name of the database (``<MLOPS_DATABASE_PREFIX>_data``, shared with Feast's
#: registry) and the folder under the data directory
DATABASE_COMPONENT = "data"
SOURCE_DIR = "source"


def write_example_data(writer: SourceWriter, data: ExampleData) -> dict[str, int]:
    """Write every source table of ``data``; return rows written per table."""
    return {table: writer.write(table, frame) for table, frame in data.tables().items()}


def _utc(ts: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(ts)
    return stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)


def _sorted(table_schema: TableSchema, frame: pd.DataFrame) -> pd.DataFrame:
    frame = table_schema.conform(frame)
    return frame.sort_values(list(table_schema.sort_key), kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- local parquet files


class LocalFileSource:
    """The example source as hourly parquet partitions under ``root``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def location(self) -> str:
        return str(self.root)

    def close(self) -> None:
        """Nothing to release (files are opened per read and write)."""

    def partition_path(self, table: str, hour: datetime) -> Path:
        h = _utc(hour).floor("h")
        return self.root / table / f"date={h:%Y-%m-%d}" / f"part-{h:%Y%m%dT%H}.parquet"

    def write(self, table: str, frame: pd.DataFrame) -> int:
        table_schema = schema(table)
        frame = table_schema.conform(frame)
        if frame.empty:
            return 0
        hours = frame[table_schema.slice_column].dt.floor("h")
        for hour, part in frame.groupby(hours, sort=True):
            path = self.partition_path(table, pd.Timestamp(hour).to_pydatetime())
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=path.parent)
            os.close(fd)
            try:
                part.reset_index(drop=True).to_parquet(tmp_name, index=False, engine="pyarrow")
                os.replace(tmp_name, path)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
        return len(frame)

    def read(self, table: str, start: datetime, end: datetime) -> pd.DataFrame:
        table_schema = schema(table)
        lo, hi = _utc(start), _utc(end)
        frames: list[pd.DataFrame] = []
        hour = lo.floor("h")
        while hour < hi:
            path = self.partition_path(table, hour.to_pydatetime())
            if path.exists():
                frames.append(pd.read_parquet(path, engine="pyarrow"))
            hour += pd.Timedelta(hours=1)
        if not frames:
            return table_schema.empty()
        frame = table_schema.conform(pd.concat(frames, ignore_index=True))
        column = frame[table_schema.slice_column]
        return _sorted(table_schema, frame[(column >= lo) & (column < hi)])


# ------------------------------------------------------------------------------------ PostgreSQL

_PG_TYPES = {
    "int64": "BIGINT",
    "float64": "DOUBLE PRECISION",
    "bool": "BOOLEAN",
    "object": "TEXT",
    TIMESTAMP: "TIMESTAMPTZ",
}


class PostgresSource:
    """The example source as tables in schema ``source`` of a PostgreSQL database."""

    def __init__(self, database_url: str | URL, *, schema_name: str = SOURCE_SCHEMA) -> None:
        self.url = postgres_url(database_url, None)
        self.schema_name = schema_name
        self.engine = make_engine(self.url)
        self._ready: set[str] = set()

    @property
    def location(self) -> str:
        return f"{self.url.render_as_string(hide_password=True)} (schema {self.schema_name})"

    def close(self) -> None:
        self.engine.dispose()

    def _q(self, name: str) -> str:
        return self.engine.dialect.identifier_preparer.quote_identifier(name)

    def _table(self, table: str) -> str:
        return f"{self._q(self.schema_name)}.{self._q(table)}"

    def create_tables(self, tables: tuple[str, ...] | None = None) -> None:
        """Create the schema and tables when absent (done implicitly by ``write``)."""
        with self.engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {self._q(self.schema_name)}"))
            for table in tables or TABLES:
                table_schema = schema(table)
                columns = ", ".join(
                    f"{self._q(c)} {_PG_TYPES[t]}" for c, t in table_schema.columns.items()
                )
                pk = ", ".join(self._q(c) for c in table_schema.primary_key)
                conn.execute(
                    text(
                        f"CREATE TABLE IF NOT EXISTS {self._table(table)} "
                        f"({columns}, PRIMARY KEY ({pk}))"
                    )
                )
                index = self._q(f"{table}_{table_schema.slice_column}_idx")
                conn.execute(
                    text(
                        f"CREATE INDEX IF NOT EXISTS {index} ON {self._table(table)} "
                        f"({self._q(table_schema.slice_column)})"
                    )
                )
        self._ready.update(tables or TABLES)

    @contextmanager
    def _raw(self) -> Iterator[Any]:
        conn = self.engine.raw_connection()
        try:
            yield conn
        finally:
            conn.close()

    def write(self, table: str, frame: pd.DataFrame) -> int:
        table_schema = schema(table)
        frame = table_schema.conform(frame)
        if frame.empty:
            return 0
        pk = list(table_schema.primary_key)
        dup = frame.duplicated(pk)
        if dup.any():
            first = frame.loc[dup, pk].iloc[0].to_dict()
            raise ValueError(
                f"{table}: {int(dup.sum())} rows repeat a primary key within one write "
                f"(first: {first})"
            )
        if table not in self._ready:
            self.create_tables((table,))
        buf = io.StringIO()
        frame.to_csv(buf, index=False, header=False, na_rep="")
        buf.seek(0)
        columns = ", ".join(self._q(c) for c in table_schema.columns)
        updates = ", ".join(
            f"{self._q(c)} = EXCLUDED.{self._q(c)}"
            for c in table_schema.columns
            if c not in table_schema.primary_key
        )
        conflict = ", ".join(self._q(c) for c in pk)
        with self._raw() as conn:
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        f"CREATE TEMP TABLE _incoming (LIKE {self._table(table)}) ON COMMIT DROP"
                    )
                    cur.copy_expert(f"COPY _incoming ({columns}) FROM STDIN WITH (FORMAT csv)", buf)
                    cur.execute(
                        f"INSERT INTO {self._table(table)} ({columns}) "
                        f"SELECT {columns} FROM _incoming "
                        f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
                    )
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        return len(frame)

    def read(self, table: str, start: datetime, end: datetime) -> pd.DataFrame:
        table_schema = schema(table)
        lo, hi = _utc(start), _utc(end)
        if table not in self._ready:
            self.create_tables((table,))
        columns = ", ".join(self._q(c) for c in table_schema.columns)
        query = (
            f"SELECT {columns} FROM {self._table(table)} "
            f"WHERE {self._q(table_schema.slice_column)} >= :lo "
            f"AND {self._q(table_schema.slice_column)} < :hi"
        )
        with self.engine.connect() as conn:
            frame = pd.read_sql_query(
                text(query), conn, params={"lo": lo.to_pydatetime(), "hi": hi.to_pydatetime()}
            )
        if frame.empty:
            return table_schema.empty()
        return _sorted(table_schema, frame)


def open_example_source(
    settings: PlatformSettings | None = None,
) -> LocalFileSource | PostgresSource:
    """The example company's raw data where the settings point (creating its database when
    absent): the factory of the source ``example``."""
    settings = settings or PlatformSettings.load()
    if settings.uses_postgres:
        server = settings.mlops_database_url.strip()
        database = settings.database_name(DATABASE_COMPONENT)
        ensure_database(server, database)
        return PostgresSource(postgres_url(server, database))
    return LocalFileSource(settings.data_dir / SOURCE_DIR)
