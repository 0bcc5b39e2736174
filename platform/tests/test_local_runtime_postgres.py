"""The local runtime on real backends: the machine's PostgreSQL keeps Airflow's and MLflow's
metadata (in databases this test creates and drops), the machine's Redis is the online store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from mlops_testing.stack import (
    Stack,
    airflow_token,
    drop_databases,
    get_json,
    postgres_server_url,
    redis_server_url,
)

pytestmark = pytest.mark.integration

SERVER = make_url(postgres_server_url())


def _connect(database: str) -> psycopg2.extensions.connection:
    return psycopg2.connect(
        host=SERVER.host,
        port=SERVER.port or 5432,
        user=SERVER.username,
        password=SERVER.password,
        dbname=database,
    )


def _tables(database: str) -> set[str]:
    conn = _connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def pg_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    prefix = f"mlops_test_{uuid.uuid4().hex[:8]}"
    stack = Stack(
        tmp_path_factory.mktemp("pg-platform"),
        extra_env={
            "MLOPS_DATABASE_URL": postgres_server_url(),
            "MLOPS_DATABASE_PREFIX": prefix,
            "MLOPS_REDIS_URL": redis_server_url(),
        },
    )
    try:
        for service in ("feast", "mlflow", "airflow"):
            result = stack.run(service, "up")
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        yield stack, prefix
    finally:
        stack.down()
        drop_databases([f"{prefix}_airflow", f"{prefix}_mlflow"])


def test_metadata_lives_in_postgres(pg_stack: tuple[Stack, str]) -> None:
    stack, prefix = pg_stack
    assert {"experiments", "runs", "registered_models", "model_versions"} <= _tables(
        f"{prefix}_mlflow"
    )
    assert {"dag", "dag_run", "task_instance"} <= _tables(f"{prefix}_airflow")
    assert not (stack.data_dir / "mlflow" / "mlflow.db").exists()
    assert not (stack.data_dir / "airflow" / "airflow.db").exists()


def test_services_work_on_postgres(pg_stack: tuple[Stack, str]) -> None:
    stack, _ = pg_stack
    experiments = get_json(
        f"{stack.url('MLFLOW_PORT')}/api/2.0/mlflow/experiments/search",
        data={"max_results": 10},
    )
    assert any(e["name"] == "Default" for e in experiments["experiments"])
    token = airflow_token(stack, stack.env_value("AIRFLOW_ADMIN_PASSWORD"))
    dags = get_json(
        f"{stack.url('AIRFLOW_PORT')}/api/v2/dags", headers={"Authorization": f"Bearer {token}"}
    )
    assert "total_entries" in dags


def test_online_store_is_the_configured_redis(pg_stack: tuple[Stack, str]) -> None:
    stack, _ = pg_stack
    result = stack.run("feast", "status")
    assert result.returncode == 0, result.stdout
    redis = make_url(redis_server_url())
    assert f"redis {redis.host}:{redis.port or 6379} PONG" in result.stdout
    assert not any("feast-redis" in line for line in result.stdout.splitlines())
