"""Airflow for tests and benchmarks: a throw-away Airflow home (SQLite) with one local DAG
bundle, the ``airflow`` CLI in it, and Python snippets run in a subprocess (DAG parsing)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

AIRFLOW = str(Path(sys.executable).parent / "airflow")

AirflowCli = Callable[..., "subprocess.CompletedProcess[str]"]


def airflow_env(
    home: Path,
    bundle: str,
    dags: Path,
    base: Mapping[str, str] | None = None,
    drop: tuple[str, ...] = ("AIRFLOW",),
) -> dict[str, str]:
    """``base`` (default: this process's environment) without the variables starting with one of
    ``drop``, plus an Airflow home at ``home`` (SQLite, no examples) whose one DAG bundle
    ``bundle`` is the folder ``dags``."""
    bundles = [
        {
            "name": bundle,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(dags), "refresh_interval": 30},
        }
    ]
    env = {
        k: v for k, v in (os.environ if base is None else base).items() if not k.startswith(drop)
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST=json.dumps(bundles),
    )
    return env


def migrated_airflow(env: Mapping[str, str], cwd: Path, timeout: float = 300) -> AirflowCli:
    """Migrate the metadata database of the Airflow home in ``env`` (asserts it worked); returns
    ``run(*args)``: the ``airflow`` CLI with that environment, its output captured as text."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd
        )

    migrate = run("db", "migrate")
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    return run


def task_runs(home: Path, dag_id: str) -> dict[str, tuple[str, float]]:
    """The task instances of the latest run of ``dag_id`` in the Airflow home ``home`` (SQLite),
    in the order they started: task id -> (state, seconds from start to end)."""
    import pandas as pd

    with sqlite3.connect(home / "airflow.db") as db:
        (run_id,) = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        rows = db.execute(
            "SELECT task_id, state, start_date, end_date FROM task_instance "
            "WHERE dag_id = ? AND run_id = ? ORDER BY start_date",
            (dag_id, run_id),
        ).fetchall()
    return {
        task: (state, (pd.Timestamp(end) - pd.Timestamp(start)).total_seconds())
        for task, state, start, end in rows
    }


def python_json(*args: str, env: Mapping[str, str], timeout: float) -> Any:
    """Run ``python *args`` in ``env`` (asserts it exits 0); returns its last line of output,
    parsed as JSON."""
    result = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
