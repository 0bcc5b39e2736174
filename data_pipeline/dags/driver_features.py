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

from typing import Any

from airflow.sdk import CronDataIntervalTimetable, Param, chain, dag, get_current_context, task

from mlops_common.dags import dag_defaults, flag_from_env, start_date_from_env

DAG_ID = "driver_features"
STEPS = ("ingest", "validate", "transform", "publish", "apply", "materialize")
#: the conf of a manual run: the interval to process (a scheduled run takes its data interval)
INTERVAL_PARAMS = {
    "start": Param(None, type=["null", "string"], description="ISO 8601, UTC, whole hour"),
    "end": Param(None, type=["null", "string"], description="exclusive, ISO 8601, UTC"),
}


def _run(step: str) -> dict[str, Any]:
    from data_pipeline.dag_support import run_task

    return run_task(step, get_current_context())


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=start_date_from_env("MLOPS_DATA_DAG_START_DATE"),
    params=INTERVAL_PARAMS,
    **dag_defaults(
        __doc__,
        "data",
        "features",
        "driver_ranking",
        catchup=flag_from_env("MLOPS_DATA_DAG_CATCHUP"),
    ),
)
def driver_features() -> None:
    # a rejected batch fails validate for good: it is the one step that is not retried
    runs = [task(task_id=step, retries=int(step != "validate"))(_run)(step) for step in STEPS]
    chain(*runs)


driver_features()
