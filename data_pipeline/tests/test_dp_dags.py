"""The data pipeline's DAGs: they parse thin, the run interval comes from the data interval or the
conf, and one real ``airflow dags test`` run of ``driver_features`` succeeds end to end."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from data_pipeline import feature_store as fs
from data_pipeline.batch import ValidationFailed
from data_pipeline.dag_support import run_task
from example_project.world.config import ExampleSourceConfig
from mlops_common.intervals import ConfError, resolve_interval
from mlops_testing.airflow import airflow_env, migrated_airflow, python_json, task_runs
from mlops_testing.data import (
    FEATURES_DAG,
    PIPELINE_DAGS,
    isolated_settings,
    latest_offline,
    online_values,
    subprocess_env,
    use_environment_of,
    write_world,
)

STEPS = ["ingest", "validate", "transform", "publish", "apply", "materialize"]

PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": {
        dag_id: {
            "edges": sorted([t.task_id, d] for t in dag.tasks for d in t.downstream_task_ids),
            "params": sorted(dag.params.keys()),
            "max_active_runs": dag.max_active_runs,
            "timetable": type(dag.timetable).__name__,
        }
        for dag_id, dag in bag.dags.items()
    },
    "heavy": sorted(m for m in sys.modules
                    if m.split(".")[0] in ("data_pipeline", "example_project", "feast", "pandas",
                                           "pandera", "pyarrow", "dask")),
}))
"""


def _airflow_env(home: Path) -> dict[str, str]:
    return airflow_env(home, "data_pipeline", PIPELINE_DAGS)


def test_every_dag_file_parses_thin(tmp_path: Path) -> None:
    env = _airflow_env(tmp_path / "airflow")
    parsed = python_json("-W", "ignore", "-c", PARSE, str(PIPELINE_DAGS), env=env, timeout=120)
    assert parsed["errors"] == {}
    assert len(parsed["dags"]) == len(list(PIPELINE_DAGS.glob("*.py")))
    dag = parsed["dags"][FEATURES_DAG]
    assert dag["edges"] == sorted([a, b] for a, b in itertools.pairwise(STEPS))
    assert dag["params"] == ["end", "start"]
    assert dag["max_active_runs"] == 1
    assert dag["timetable"] == "CronDataIntervalTimetable"
    assert parsed["heavy"] == []  # nothing heavy imported when the DAG files are parsed


def test_run_interval_from_conf_or_data_interval() -> None:
    start = datetime(2024, 1, 1, 5, tzinfo=UTC)
    interval = resolve_interval({"start": None, "end": None}, start, start + timedelta(hours=1))
    assert (interval.start, interval.end) == (start, start + timedelta(hours=1))
    conf = {"start": "2024-01-02T00:00:00Z", "end": "2024-01-03"}
    interval = resolve_interval(conf, start, start + timedelta(hours=1))
    assert interval.id == "20240102T00-20240103T00"
    with pytest.raises(ConfError, match="no data interval"):
        resolve_interval({}, None, None)
    with pytest.raises(ConfError, match="no data interval"):
        resolve_interval({}, start, start)  # a manual run: empty interval
    with pytest.raises(ConfError, match="both"):
        resolve_interval({"start": "2024-01-02"}, start, start + timedelta(hours=1))
    with pytest.raises(ConfError, match="whole UTC hour"):
        resolve_interval({"start": "2024-01-02T00:10Z", "end": "2024-01-03"}, None, None)


def test_a_rejected_batch_fails_the_task_without_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    settings = isolated_settings(tmp_path)
    use_environment_of(settings, monkeypatch)
    context = {"params": {"start": "2024-01-01T00:00Z", "end": "2024-01-01T01:00Z"}}
    ingested = run_task("ingest", context)
    assert ingested["rows"] == 0
    with pytest.raises(AirflowFailException, match="min_rows") as failed:
        run_task("validate", context)
    assert isinstance(failed.value.__cause__, ValidationFailed)
    with pytest.raises(AirflowFailException, match="no data interval"):
        run_task("ingest", {"params": {}})


@pytest.mark.integration
def test_driver_features_dag_run_with_airflow_dags_test(tmp_path: Path) -> None:
    t0 = datetime(2024, 8, 1, tzinfo=UTC)
    settings = isolated_settings(tmp_path / "data")
    config = ExampleSourceConfig(
        seed=9, n_drivers=100, start=t0, end=t0 + timedelta(hours=3), bookings_per_hour=5
    )
    write_world(settings, config)
    home = tmp_path / "airflow"
    env = {**_airflow_env(home), **subprocess_env(settings)}
    run = migrated_airflow(env, tmp_path)
    conf = {"start": "2024-08-01T00:00:00Z", "end": "2024-08-01T03:00:00Z"}
    result = run("dags", "test", FEATURES_DAG, "2024-08-01T03:00:00+00:00", "-c", json.dumps(conf))
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    tasks = task_runs(home, FEATURES_DAG)
    assert {task: state for task, (state, _) in tasks.items()} == dict.fromkeys(STEPS, "success")
    print("task seconds:", {task: round(s, 2) for task, (_, s) in tasks.items()})
    # the conf's interval was processed, and every driver has its latest features online
    assert (settings.pipeline_dir / "driver_hourly_stats" / "20240801T00-20240801T03").is_dir()
    assert len(latest_offline(settings)) == 100
    online = online_values(settings, config.driver_ids)
    assert online.notna().all().all()
    pd.testing.assert_frame_equal(
        online,
        latest_offline(settings)[list(fs.FEATURE_NAMES)],
        check_dtype=False,
        check_names=False,
    )
