"""Batch prediction: one row per active driver, point-in-time features of the model's feature
service, idempotent per interval; and the DAG under ``airflow dags test``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from ms_fixtures import (
    FEATURES,
    build_store,
    drop_project_keys,
    register_model,
    stats_frame,
    store_settings,
    unique_name,
)

from mlops_testing.airflow import airflow_env, migrated_airflow
from mlops_testing.stack import MlflowServer
from model_serving.batch import COLUMNS, BatchError, interval_file, run_batch, table_dir
from model_serving.settings import ServingSettings

pytestmark = pytest.mark.integration

END = datetime(2024, 6, 1, 12, tzinfo=UTC)
ACTIVE = list(range(1, 21))
INACTIVE = list(range(21, 26))  # last seen 5 hours before the end: beyond the 3 h TTL
DAGS = Path(__file__).resolve().parents[1] / "dags"


class World:
    def __init__(self, folder: Path, project: str, model: str, tracking: str) -> None:
        self.folder, self.project, self.model, self.tracking = folder, project, model, tracking
        self.data = store_settings(folder, project)
        self.store = build_store(folder, project)

    def serving(self, **values: Any) -> ServingSettings:
        base: dict[str, Any] = {
            "mlops_data_dir": self.folder,
            "mlflow_tracking_uri": self.tracking,
            "serving_model_name": self.model,
        }
        return ServingSettings(**{**base, **values})


def write_offline(folder: Path, frame: pd.DataFrame) -> None:
    """Rows into the offline table the way the data pipeline lays it out (date partitions)."""
    from data_pipeline.feature_store import OFFLINE_COLUMNS, offline_table_dir
    from data_pipeline.settings import DataPipelineSettings

    root = offline_table_dir(DataPipelineSettings(_env_file=None, mlops_data_dir=folder))  # type: ignore[call-arg]
    frame = frame.copy()
    for column in ("event_timestamp", "created"):
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ns, UTC]")
    frame = frame[list(OFFLINE_COLUMNS)]
    for day, part in frame.groupby(frame["event_timestamp"].dt.strftime("%Y-%m-%d")):
        target = root / f"date={day}"
        target.mkdir(parents=True, exist_ok=True)
        part.to_parquet(target / f"part-{len(list(target.iterdir()))}.parquet", index=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("batch")
    project = unique_name("ms_batch")
    name = unique_name("ms_batch_model")
    register_model(mlflow_server.url, name, alias="champion")
    made = World(folder, project, name, mlflow_server.url)
    write_offline(
        folder,
        pd.concat(
            [
                stats_frame(ACTIVE, END - timedelta(hours=2), seed=1),
                stats_frame(ACTIVE, END - timedelta(hours=1), seed=2),  # the latest before the end
                stats_frame(ACTIVE, END + timedelta(hours=1), seed=3),  # after the end: not used
                stats_frame(INACTIVE, END - timedelta(hours=5), seed=4),
            ]
        ),
    )
    yield made
    drop_project_keys(project)


def test_one_row_per_active_driver_with_point_in_time_features(world: World) -> None:
    import mlflow.sklearn

    summary = run_batch(world.serving(), interval_end=END, store=world.store)
    path = interval_file(table_dir(world.serving()), END)
    assert summary["file"] == str(path) and summary["scored"] == len(ACTIVE)
    table = pd.read_parquet(path)
    assert tuple(table.columns) == COLUMNS  # the table's declared schema, in its order
    assert sorted(table["driver_id"]) == ACTIVE
    assert list(table["rank"]) == list(range(1, len(ACTIVE) + 1))
    assert table["score"].is_monotonic_decreasing
    assert set(table["model_version"]) == {"1"} and set(table["model_name"]) == {world.model}
    assert (table["interval_end"] == pd.Timestamp(END)).all()
    # the features as of the end: the rows of END - 1h (seed 2), not the later ones (seed 3)
    expected = stats_frame(ACTIVE, END, seed=2).set_index("driver_id")[list(FEATURES)]
    model = mlflow.sklearn.load_model(f"models:/{world.model}/1")
    proba = dict(zip(expected.index, model.predict_proba(expected)[:, 1], strict=True))
    for driver, score in zip(table["driver_id"], table["score"], strict=True):
        assert score == pytest.approx(float(proba[driver]), abs=1e-12)


def test_rerunning_an_interval_replaces_its_file(world: World) -> None:
    settings = world.serving()
    first = run_batch(settings, interval_end=END, store=world.store)
    before = pd.read_parquet(first["file"])
    second = run_batch(settings, interval_end=END, store=world.store)
    after = pd.read_parquet(second["file"])
    assert first["file"] == second["file"]
    assert len(list(Path(first["file"]).parent.iterdir())) == 1  # no temp file left over
    pd.testing.assert_frame_equal(before.drop(columns="scored_at"), after.drop(columns="scored_at"))


def test_a_request_file_and_bad_input(world: World, tmp_path: Path) -> None:
    requests = tmp_path / "drivers.csv"
    requests.write_text("driver_id,comment\n3,x\n21,inactive\n999,unknown\n3,again\n")
    summary = run_batch(
        world.serving(),
        drivers_file=requests,
        interval_end=END,
        store=world.store,
        output_dir=tmp_path / "out",
    )
    assert (summary["candidates"], summary["scored"], summary["inactive_or_unknown"]) == (3, 1, 2)
    bad = tmp_path / "bad.csv"
    bad.write_text("driver_id\n-4\n")
    with pytest.raises(BatchError, match="line 1: '-4' is not a driver id"):
        run_batch(
            world.serving(),
            drivers_file=bad,
            interval_end=END,
            store=world.store,
        )
    with pytest.raises(BatchError, match="has no version with the alias 'champion'"):
        run_batch(
            world.serving(serving_model_name="no_such_model"),
            interval_end=END,
            store=world.store,
        )


def test_the_dag_with_airflow_dags_test(world: World, tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    drop = ("AIRFLOW", "MLOPS_", "SERVING_", "MLFLOW_")
    env = airflow_env(home, "model_serving", DAGS, drop=drop)
    env.update(
        MLOPS_ENV_FILE=str(tmp_path / "no.env"),
        MLOPS_DATA_DIR=str(world.folder),
        MLOPS_FEAST_PROJECT=world.project,
        MLOPS_ONLINE_STORE_URL=str(world.data.online_store_url),
        MLOPS_DATABASE_URL="",
        MLFLOW_TRACKING_URI=world.tracking,
        SERVING_MODEL_NAME=world.model,
        OMP_NUM_THREADS="1",
    )
    run = migrated_airflow(env, tmp_path)
    end = END + timedelta(hours=1)  # a new interval: its own file
    conf = {"start": END.strftime("%Y-%m-%dT%H:%M:%SZ"), "end": end.strftime("%Y-%m-%dT%H:%M:%SZ")}
    result = run("dags", "test", "driver_batch_prediction", end.isoformat(), "-c", json.dumps(conf))
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    path = interval_file(table_dir(world.serving()), end)
    table = pd.read_parquet(path)
    # active at END + 1h: every driver seen within the 3 h TTL before it
    assert sorted(table["driver_id"]) == ACTIVE
    assert np.all(table["model_version"] == "1")
