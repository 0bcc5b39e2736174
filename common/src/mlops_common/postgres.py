"""PostgreSQL: per-component database URLs on the configured server, created when absent.

Needs ``mlops-common[postgres]`` (SQLAlchemy and psycopg2). SQLAlchemy 2.1 maps a bare
``postgresql://`` to psycopg 3, so every URL built here names its driver.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ProgrammingError


def database_url(server_url: str | URL, database: str | None, driver: str = "psycopg2") -> URL:
    """``server_url`` (any ``postgresql[+driver]://`` URL) pointed at ``database`` (None: keep
    the URL's) with ``driver``."""
    url = make_url(server_url) if isinstance(server_url, str) else server_url
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {url.render_as_string(hide_password=True)}")
    url = url.set(drivername=f"postgresql+{driver}")
    return url if database is None else url.set(database=database)


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """A SQLAlchemy engine on the psycopg2 driver whose sessions use UTC."""
    return create_engine(
        database_url(url, None),
        connect_args={"options": "-c timezone=UTC"},
        pool_pre_ping=True,
        **kwargs,
    )


def ensure_database(server_url: str, name: str) -> bool:
    """Create database ``name`` on the server when absent (the check runs against the
    ``postgres`` maintenance database). Returns True when this call created it."""
    if not name or len(name) > 63:
        raise ValueError(f"invalid database name {name!r}")
    engine = make_engine(database_url(server_url, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar()
            if exists:
                return False
            quoted = conn.dialect.identifier_preparer.quote_identifier(name)
            try:
                conn.execute(text(f"CREATE DATABASE {quoted}"))
            except ProgrammingError as exc:  # created concurrently by someone else
                if "already exists" not in str(exc):
                    raise
                return False
            return True
    finally:
        engine.dispose()
