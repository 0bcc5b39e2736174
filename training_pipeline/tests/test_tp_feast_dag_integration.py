"""The real thing: the training set built through Feast (``data_pipeline.feature_store``), and
the training DAG run with ``airflow dags test`` against a real MLflow server.

The offline store is filled the way the batch pipeline publishes it (parquet files of the feature
view's rows under ``<data_dir>/offline/driver_hourly_stats``) and registered with the data
pipeline's ``apply`` (feast apply); the labels come from the example source files. The online
store is SQLite (historical retrieval does not read it).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from tp_fixtures import World, small_settings

from training_pipeline import steps

pytestmark = pytest.mark.integration

DAGS = Path(__file__).resolve().parents[1] / "dags"
DAG_ID = "driver_ranking_training"
WINDOW = {"window_start": "2024-01-01T00:00:00Z", "window_end": "2024-01-11T00:00:00Z"}


@pytest.fixture(scope="module")
def feast_env(
    small_world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A data directory with the small world's source tables, its offline feature rows and the
    applied feature repository; the environment variables that point at it."""
    from contextlib import closing

    from data_pipeline.feature_store import OFFLINE_COLUMNS, apply, offline_table_dir
    from data_pipeline.settings import DataPipelineSettings
    from example_project.storage import open_example_source, write_example_data

    root = tmp_path_factory.mktemp("feast")
    env = {
        "MLOPS_DATA_DIR": str(root / "data"),
        "MLOPS_ONLINE_STORE_URL": f"sqlite:///{root / 'online.db'}",
        "MLOPS_ENV_FILE": str(root / "none.env"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = DataPipelineSettings()
        # the example source (MLOPS_SOURCE's default) under the data directory
        with closing(open_example_source(settings)) as source:
            write_example_data(source, small_world.data)
        stats = small_world.data.driver_hourly_stats
        table = offline_table_dir(settings)
        for day, rows in stats.groupby(stats["event_timestamp"].dt.strftime("%Y-%m-%d")):
            folder = table / f"date={day}"
            folder.mkdir(parents=True, exist_ok=True)
            rows[list(OFFLINE_COLUMNS)].astype(OFFLINE_COLUMNS).to_parquet(
                folder / "part-0.parquet", index=False
            )
        result = apply(settings)
        assert result.feature_services == ["driver_ranking_v1"]
    yield env


def _fixture_hashes(world: World, run_dir: Path) -> tuple[str, str]:
    """The hashes of the same run built from the generator's tables (as-of join fixture)."""
    manifest = steps.build_training_set(
        run_dir, small_settings(world), labels=world.labels, features=world.features
    )
    return manifest["training_set_hash"], manifest["candidates_hash"]


def test_training_set_through_feast_is_the_point_in_time_truth(
    feast_env: dict[str, str],
    small_world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from data_pipeline.feature_store import FEATURE_SERVICE, MODEL_FEATURES

    for key, value in feast_env.items():
        monkeypatch.setenv(key, value)
    manifest = steps.build_training_set(tmp_path / "run", small_settings(small_world))
    assert manifest["feature_service"] == FEATURE_SERVICE
    assert manifest["feature_refs"] == list(MODEL_FEATURES)
    assert manifest["n_rows"] == len(small_world.data.bookings)
    # candidate sets of the holdout bookings only (20 % of the window), 5 candidates each
    assert manifest["n_candidates"] == 5 * 960
    assert manifest["feature_dtypes"]["avg_daily_trips"] == "int64"
    # Feast's point-in-time join gives exactly the generator's statistics of the booking's hour
    # (the as-of join of the test fixture), for every booking and every candidate
    assert (manifest["training_set_hash"], manifest["candidates_hash"]) == _fixture_hashes(
        small_world, tmp_path / "fixture"
    )
    steps.validate(tmp_path / "run", small_settings(small_world))


def _airflow_states(airflow_home: Path) -> dict[str, str | None]:
    """Task states of the latest DAG run, from Airflow's own metadata database."""
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        (run_id,) = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)
        ).fetchone()
        rows = db.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
            (DAG_ID, run_id),
        ).fetchall()
    return dict(rows)


def test_training_dag_with_airflow_dags_test(
    feast_env: dict[str, str],
    small_world: World,
    mlflow_server: str,
    tmp_path: Path,
) -> None:
    name = "tp_dag_test"
    airflow_home = tmp_path / "airflow"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_"))
    }
    env.update(feast_env)
    env.update(
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        MLFLOW_TRACKING_URI=mlflow_server,
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        MLOPS_TRAINING_MODEL_NAME=name,
        MLOPS_TRAINING_VALIDATION__MIN_ROWS="500",
    )
    airflow = str(Path(sys.executable).parent / "airflow")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [airflow, *args], env=env, capture_output=True, text=True, timeout=300
        )

    migrate = run("db", "migrate")
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]

    good = run("dags", "test", DAG_ID, "-c", json.dumps({**WINDOW, "reason": "dags test"}))
    log = good.stdout + good.stderr
    assert good.returncode == 0, log[-4000:]
    assert set(_airflow_states(airflow_home).values()) == {"success"}, log[-4000:]
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    runs = sorted((Path(feast_env["MLOPS_DATA_DIR"]) / "training/runs" / DAG_ID).iterdir())
    assert len(runs) == 1
    manifest = json.loads((runs[0] / "training_set.json").read_text())
    assert manifest["training_set_hash"] == _fixture_hashes(small_world, tmp_path / "fx")[0]
    gate = json.loads((runs[0] / "gate.json").read_text())
    assert gate["status"] == "promoted" and gate["alias"] == "champion"
    trigger = json.loads((runs[0] / "trigger.json").read_text())
    assert trigger["conf"]["reason"] == "dags test"

    # a deliberately worse candidate: the gate task fails with the reason, the champion stays
    crippled = {
        **WINDOW,
        "overrides": {"estimator": {"hyperparameters": {"max_iter": 1, "max_depth": 1}}},
        "alert": {"labels": {"alertname": "ModelQualityDegraded"}},
    }
    bad = run("dags", "test", DAG_ID, "-c", json.dumps(crippled))
    log = bad.stdout + bad.stderr
    assert bad.returncode != 0
    states = _airflow_states(airflow_home)
    assert states.pop("gate") == "failed", log[-4000:]
    assert set(states.values()) == {"success"}
    assert "gate refused the candidate" in log and "< minimum" in log
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    refused = client.get_model_version(name, "2")
    assert refused.tags["gate.status"] == "refused" and not refused.aliases
    run_tags = client.get_run(refused.run_id).data.tags
    assert run_tags["trigger.source"] == "alert"
    assert run_tags["trigger.alertname"] == "ModelQualityDegraded"
