"""Throw-away PostgreSQL databases on the real server the integration tests use."""

from __future__ import annotations

import os

from sqlalchemy import text
from sqlalchemy.engine import make_url

from mlops_common.postgres import make_engine

#: The real server the integration tests use (trust auth on this machine).
PG_SERVER_URL = os.environ.get("MLOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")


def drop_database(server_url: str, name: str) -> None:
    """Drop the database ``name`` (a test's own) on the server, connections and all."""
    engine = make_engine(
        make_url(server_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()
