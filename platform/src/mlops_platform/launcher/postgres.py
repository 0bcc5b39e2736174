"""PostgreSQL helpers: per-component database URLs on the configured server."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url


def database_url(server_url: str, database: str, driver: str = "psycopg2") -> URL:
    """`server_url` (any postgresql[+driver]:// URL) pointed at `database` with `driver`."""
    url = make_url(server_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {url.render_as_string(hide_password=True)}")
    return url.set(drivername=f"postgresql+{driver}", database=database)


def ensure_database(server_url: str, database: str) -> bool:
    """Create `database` on the server when absent. Returns True when it was created."""
    import psycopg2
    from psycopg2 import sql

    admin = database_url(server_url, "postgres")
    conn = psycopg2.connect(
        host=admin.host or "127.0.0.1",
        port=admin.port or 5432,
        user=admin.username or "postgres",
        password=admin.password,
        dbname="postgres",
    )
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone():
                return False
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            return True
    finally:
        conn.close()
