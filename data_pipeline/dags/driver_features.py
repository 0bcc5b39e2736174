"""Driver features: ingest → validate → transform → publish → apply → materialize, hourly.

Each task runs one step of the ``data-pipeline`` CLI (``data_pipeline.batch.steps``) on the run's
interval: its data interval (one hour for scheduled runs, each hour of a backfill), or the conf
``{"start": "...", "end": "..."}`` (ISO 8601, UTC, whole hours) when given — required for a
manual trigger through the REST API, whose run has no data interval:

    POST /api/v2/dags/driver_features/dagRuns
    {"logical_date": null, "conf": {"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"}}

A batch that fails validation fails the ``validate`` task (no retry) and nothing downstream runs:
the offline and online stores stay untouched; the quarantine report names the rules and rows.

Backfill: ``airflow backfill create --dag-id driver_features --from-date 2024-01-01
--to-date 2024-01-08`` (one run per hour; runs one at a time, in order). Set
``MLOPS_DATA_DAG_START_DATE`` (ISO date, default 2024-01-01) and ``MLOPS_DATA_DAG_CATCHUP=true``
to let the scheduler catch up from that date instead.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

DAG_ID = "driver_features"


def _start_date() -> datetime:
    value = os.environ.get("MLOPS_DATA_DAG_START_DATE", "").strip() or "2024-01-01"
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _run(step: str) -> dict[str, Any]:
    from data_pipeline.dag_support import run_task

    return run_task(step, get_current_context())


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=_start_date(),
    catchup=os.environ.get("MLOPS_DATA_DAG_CATCHUP", "").strip().lower() in ("1", "true", "yes"),
    max_active_runs=1,
    doc_md=__doc__,
    tags=["data", "features", "driver_ranking"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "start": Param(None, type=["null", "string"], description="ISO 8601, UTC, whole hour"),
        "end": Param(None, type=["null", "string"], description="exclusive, ISO 8601, UTC"),
    },
)
def driver_features() -> None:
    @task
    def ingest() -> dict[str, Any]:
        return _run("ingest")

    @task(retries=0)
    def validate() -> dict[str, Any]:
        return _run("validate")

    @task
    def transform() -> dict[str, Any]:
        return _run("transform")

    @task
    def publish() -> dict[str, Any]:
        return _run("publish")

    @task
    def apply() -> dict[str, Any]:
        return _run("apply")

    @task
    def materialize() -> dict[str, Any]:
        return _run("materialize")

    ingest() >> validate() >> transform() >> publish() >> apply() >> materialize()


driver_features()
