"""Test support for the batch pipeline and the example project: isolated settings, example
worlds in the source, store readers.

Used by the data pipeline's and the example project's tests and by other components' integration
tests that need features.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd
import pyarrow.dataset as ds

import data_pipeline
from data_pipeline.feature_store import (
    FEATURE_NAMES,
    FEATURE_SERVICE,
    JOIN_KEY,
    OFFLINE_COLUMNS,
    feature_store,
    offline_table_dir,
)
from data_pipeline.settings import DataPipelineSettings
from example_project.settings import ExampleProjectSettings
from example_project.storage import open_example_source, write_example_data
from example_project.world.config import ExampleSourceConfig
from example_project.world.generator import ExampleData, generate
from mlops_common.features import FeatureStoreSettings
from mlops_common.settings import PlatformSettings

if TYPE_CHECKING:
    import pytest

_S = TypeVar("_S", bound=FeatureStoreSettings)

#: Read at import: before test fixtures scrub MLOPS_* from the environment.
TEST_POSTGRES_URL = os.environ.get(
    "MLOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432"
)
TEST_REDIS_URL = os.environ.get("MLOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

#: the data pipeline's DAG folder (``data_pipeline/dags``) and its hourly feature DAG
PIPELINE_DAGS = Path(data_pipeline.__file__).resolve().parents[2] / "dags"
FEATURES_DAG = "driver_features"


def scrub_mlops_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's or CI's MLOPS_* environment out of a test (MLOPS_TEST_* stays)."""
    for name in list(os.environ):
        if name.startswith("MLOPS_") and not name.startswith("MLOPS_TEST_"):
            monkeypatch.delenv(name)


def unique_project(prefix: str = "test_dp") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _isolated(cls: type[_S], data_dir: Path, values: dict[str, Any]) -> _S:
    base: dict[str, Any] = {
        "mlops_data_dir": data_dir,
        "mlops_database_url": "",
        "mlops_redis_url": "",
        "mlops_online_store_url": f"sqlite:///{data_dir / 'feast' / 'online.db'}",
        "mlops_feast_project": "driver_ranking",
    }
    base.update(values)
    return cls(_env_file=None, **base)  # type: ignore[call-arg]


def isolated_settings(data_dir: Path, **values: Any) -> DataPipelineSettings:
    """Data pipeline settings that read no env file: local files under ``data_dir``, the SQLite
    online store ``<data_dir>/feast/online.db`` unless ``mlops_online_store_url`` says otherwise."""
    return _isolated(DataPipelineSettings, data_dir, values)


def isolated_example_settings(data_dir: Path, **values: Any) -> ExampleProjectSettings:
    """The example project's settings with the same isolation as ``isolated_settings``."""
    return _isolated(ExampleProjectSettings, data_dir, values)


def subprocess_env(settings: DataPipelineSettings) -> dict[str, str]:
    """The environment a ``data-pipeline`` / ``airflow`` subprocess needs to use ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update(
        {
            "MLOPS_DATA_DIR": str(settings.data_dir),
            "MLOPS_DATABASE_URL": settings.mlops_database_url,
            "MLOPS_DATABASE_PREFIX": settings.mlops_database_prefix,
            "MLOPS_ONLINE_STORE_URL": settings.mlops_online_store_url,
            "MLOPS_FEAST_PROJECT": settings.mlops_feast_project,
            "MLOPS_ENV_FILE": str(settings.data_dir / "no-such.env"),
            "MLOPS_VALIDATION_MAX_FAILURE_RATE": str(settings.validation_max_failure_rate),
            "MLOPS_VALIDATION_MIN_ROWS_PER_HOUR": str(settings.validation_min_rows_per_hour),
        }
    )
    return env


def use_environment_of(settings: DataPipelineSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Set the ``MLOPS_*`` variables that make a fresh settings object in this process equal
    ``settings`` (what DAG tasks read)."""
    for name, value in subprocess_env(settings).items():
        if name.startswith("MLOPS_"):
            monkeypatch.setenv(name, value)


def write_world(settings: PlatformSettings, config: ExampleSourceConfig) -> ExampleData:
    """Generate ``config``'s slice and write it to the example source of the settings' data
    directory or database (what ``MLOPS_SOURCE=example``, the default, reads)."""
    data = generate(config)
    with closing(open_example_source(settings)) as source:
        write_example_data(source, data)
    return data


def read_offline(settings: DataPipelineSettings) -> pd.DataFrame:
    """Every row of the offline table (all files), with ``OFFLINE_COLUMNS``."""
    root = offline_table_dir(settings)
    if not root.is_dir():
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in OFFLINE_COLUMNS.items()})
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table(
        columns=list(OFFLINE_COLUMNS)
    )
    frame: pd.DataFrame = table.to_pandas()
    return frame.sort_values(["event_timestamp", "driver_id", "created"], ignore_index=True)


def latest_offline(settings: DataPipelineSettings) -> pd.DataFrame:
    """Per driver, the offline row Feast considers latest (event time, then ``created``)."""
    frame = read_offline(settings).sort_values([JOIN_KEY, "event_timestamp", "created"])
    return frame.drop_duplicates(JOIN_KEY, keep="last").set_index(JOIN_KEY).sort_index()


def online_values(settings: DataPipelineSettings, driver_ids: Iterable[int]) -> pd.DataFrame:
    """The online features of the model's feature service, indexed by driver."""
    store = feature_store(settings)
    rows = [{JOIN_KEY: int(d)} for d in driver_ids]
    frame: pd.DataFrame = store.get_online_features(
        features=store.get_feature_service(FEATURE_SERVICE), entity_rows=rows
    ).to_df()
    return frame.set_index(JOIN_KEY)[list(FEATURE_NAMES)].sort_index()


def delete_redis_project(url: str, project: str) -> int:
    """Delete the online rows of a Feast project from Redis (keys end with the project name)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=b"*" + project.encode(), count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()
