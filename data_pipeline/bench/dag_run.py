"""Measure one run of the ``driver_features`` DAG (``airflow dags test``) per task.

    uv run python data_pipeline/bench/dag_run.py --drivers 1000 --hours 24 [--online-store URL]

Generates the example world (seed 42, normal scenario) for the interval into a temporary data
folder, runs the DAG once with conf ``{"start", "end"}`` against a temporary Airflow home
(SQLite), and prints each task's duration (from Airflow's metadata; includes the task's start-up
in the ``dags test`` process), the step's own time (its summary), and the materialization numbers
(the task's XCom). Default online store: SQLite in the temporary folder. With a Redis URL a
unique Feast project is used and its keys are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from example_project.world.config import ExampleSourceConfig
from mlops_testing.airflow import AIRFLOW, airflow_env, task_runs
from mlops_testing.data import (
    FEATURES_DAG,
    PIPELINE_DAGS,
    delete_redis_project,
    isolated_settings,
    subprocess_env,
    unique_project,
    write_world,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drivers", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--start", default="2024-01-01T00:00:00+00:00")
    parser.add_argument("--online-store", default="", help="redis://… (default: SQLite)")
    args = parser.parse_args()
    start = datetime.fromisoformat(args.start).astimezone(UTC)
    end = start + timedelta(hours=args.hours)
    with tempfile.TemporaryDirectory(prefix="dp-bench-") as tmp:
        root = Path(tmp)
        values: dict[str, str] = {}
        if args.online_store:
            values = {"online_store_url": args.online_store, "feast_project": unique_project()}
        settings = isolated_settings(root / "data", **values)
        began = time.perf_counter()
        write_world(settings, ExampleSourceConfig(n_drivers=args.drivers, start=start, end=end))
        print(f"generate + write: {time.perf_counter() - began:.1f} s")
        home = root / "airflow"
        env = airflow_env(home, "data_pipeline", PIPELINE_DAGS, base=subprocess_env(settings))
        airflow = AIRFLOW
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
        conf = {"start": start.isoformat(), "end": end.isoformat()}
        began = time.perf_counter()
        result = subprocess.run(
            [airflow, "dags", "test", FEATURES_DAG, end.isoformat(), "-c", json.dumps(conf)],
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - began
        try:
            if result.returncode != 0:
                print((result.stdout + result.stderr)[-4000:])
                return 1
            tasks = task_runs(home, FEATURES_DAG)
            with sqlite3.connect(home / "airflow.db") as db:
                xcom = dict(
                    db.execute(
                        "SELECT task_id, value FROM xcom WHERE dag_id = ? AND key = 'return_value'",
                        (FEATURES_DAG,),
                    ).fetchall()
                )
        finally:
            if args.online_store:
                delete_redis_project(args.online_store, settings.mlops_feast_project)
        print(
            f"interval {start.isoformat()} to {end.isoformat()} ({args.hours} h), "
            f"{args.drivers} drivers, online store {settings.online_store_url}"
        )
        print(f"airflow dags test wall time: {wall:.1f} s")
        summaries = {
            task: json.loads(value) if isinstance(value, str | bytes) else value
            for task, value in xcom.items()
        }
        print(f"  {'task':<12} {'state':<8} {'task':>8} {'step':>8}")
        for task, (state, seconds) in tasks.items():
            step = (summaries.get(task) or {}).get("seconds")
            step_text = f"{step:6.2f} s" if isinstance(step, int | float) else "       -"
            print(f"  {task:<12} {state:<8} {seconds:6.2f} s {step_text}")
        for task in ("validate", "materialize"):
            print(f"  {task}: {json.dumps(summaries.get(task))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
