"""The production-shaped configuration: source and SQL registry in PostgreSQL, Redis online store.

Needs the machine's PostgreSQL and Redis (``MLOPS_TEST_POSTGRES_URL``, ``MLOPS_TEST_REDIS_URL``).
The test creates the database ``mlops_test_<random>_data`` and a test-unique Feast project and
removes both afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import inspect

from data_pipeline import feature_store as fs
from data_pipeline.batch import run_all, run_step
from data_pipeline.settings import DataPipelineSettings
from example_project.world.config import ExampleSourceConfig
from mlops_common.postgres import make_engine
from mlops_testing.data import (
    TEST_POSTGRES_URL,
    TEST_REDIS_URL,
    delete_redis_project,
    isolated_settings,
    latest_offline,
    online_values,
    unique_project,
    write_world,
)
from mlops_testing.postgres import drop_database

pytestmark = pytest.mark.integration

T0 = datetime(2024, 7, 1, tzinfo=UTC)
N_DRIVERS = 60


@pytest.fixture
def pg_settings(tmp_path: Path) -> Iterator[DataPipelineSettings]:
    prefix = f"mlops_test_{uuid.uuid4().hex[:12]}"
    project = unique_project()
    settings = isolated_settings(
        tmp_path,
        mlops_database_url=TEST_POSTGRES_URL,
        mlops_database_prefix=prefix,
        mlops_online_store_url=TEST_REDIS_URL,
        mlops_feast_project=project,
    )
    try:
        yield settings
    finally:
        delete_redis_project(TEST_REDIS_URL, project)
        drop_database(TEST_POSTGRES_URL, f"{prefix}_data")


def test_pipeline_on_postgres_with_the_sql_registry(pg_settings: DataPipelineSettings) -> None:
    settings = pg_settings
    config = ExampleSourceConfig(
        seed=3, n_drivers=N_DRIVERS, start=T0, end=T0 + timedelta(hours=3), bookings_per_hour=10
    )
    data = write_world(settings, config)
    results = run_all(T0, T0 + timedelta(hours=3), settings)
    assert results[0]["source"].endswith("(schema source)")
    assert results[0]["rows"] == 3 * N_DRIVERS
    applied = next(r for r in results if r["step"] == "apply")
    assert applied["registry"].startswith("sql postgresql")
    assert settings.data_database in applied["registry"]

    # the registry is in the data database, readable by any new store
    engine = make_engine(settings.data_database_url or "")
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"feature_views", "feature_services", "entities", "data_sources"} <= tables
    store = fs.feature_store(settings)
    assert store.config.registry.registry_type == "sql"
    assert store.get_feature_service(fs.FEATURE_SERVICE).name == fs.FEATURE_SERVICE
    assert [v.name for v in store.list_feature_views()] == [fs.FEATURE_VIEW]

    # apply is idempotent: nothing new created, the registry's objects keep their identity
    created = store.get_feature_service(fs.FEATURE_SERVICE).created_timestamp
    again = run_step("apply", None, None, settings)
    assert "Created" not in again["output"]
    fresh = fs.feature_store(settings)
    assert fresh.get_feature_service(fs.FEATURE_SERVICE).created_timestamp == created
    assert len(fresh.list_feature_views()) == 1 and len(fresh.list_entities()) == 1

    # online (Redis) = latest offline, for every driver
    online = online_values(settings, config.driver_ids)
    pd.testing.assert_frame_equal(
        online,
        latest_offline(settings)[list(fs.FEATURE_NAMES)],
        check_dtype=False,
        check_names=False,
    )
    # historical retrieval through the SQL registry: the booking's own hour
    bookings = data.bookings.head(20)
    hist = fresh.get_historical_features(
        entity_df=bookings[["driver_id", "event_timestamp"]],
        features=fresh.get_feature_service(fs.FEATURE_SERVICE),
    ).to_df()
    stats = data.driver_hourly_stats.set_index(["driver_id", "event_timestamp"])
    hours = hist["event_timestamp"].dt.floor("h")
    expected = stats.loc[list(zip(hist["driver_id"], hours, strict=True)), "rating"].to_numpy()
    assert (hist["rating"].to_numpy() == expected).all()


def test_repo_config_of_each_backend(tmp_path: Path) -> None:
    local = fs.repo_config(isolated_settings(tmp_path))
    assert local.registry.registry_type == "file"
    assert local.registry.path == str(tmp_path / "feast" / "registry.db")
    assert local.online_store.type == "sqlite"
    assert local.repo_path == tmp_path
    prefix = f"mlops_test_{uuid.uuid4().hex[:12]}"
    settings = isolated_settings(
        tmp_path,
        mlops_database_url=TEST_POSTGRES_URL,
        mlops_database_prefix=prefix,
        mlops_online_store_url="redis://:s3cret@127.0.0.1:6390/2",
    )
    try:
        config = fs.repo_config(settings)
        assert config.registry.registry_type == "sql"
        assert config.registry.path.startswith("postgresql+psycopg://")
        assert config.registry.path.endswith(f"/{prefix}_data")
        assert config.online_store.connection_string == "127.0.0.1:6390,db=2,password=s3cret"
        assert "s3cret" not in fs.describe_online_store(settings)
    finally:
        drop_database(TEST_POSTGRES_URL, f"{prefix}_data")
