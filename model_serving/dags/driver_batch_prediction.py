"""Batch prediction: every active driver scored by the champion, hourly.

One task runs ``model_serving.batch.run_batch`` (the ``model-serving batch-predict`` step) for the
run's interval: its data interval, or the conf ``{"start": "...", "end": "..."}`` (ISO 8601, UTC,
whole hours), required for a manual trigger through the REST API. Features are read point in
time at the interval's end from the model's Feast feature service; the result
(``driver_id, score, rank, model_name, model_version, interval_start, interval_end, scored_at``)
replaces ``<MLOPS_DATA_DIR>/offline/driver_predictions/interval_end=<end>/predictions.parquet``:
idempotent per interval. The conf (or param) ``drivers_file`` scores the drivers of a CSV file
(a ``driver_id`` column, or one id per line) instead of the active ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

from mlops_common.dags import dag_defaults

DAG_ID = "driver_batch_prediction"


@dag(
    dag_id=DAG_ID,
    # hourly intervals (whole hours, as the data pipeline's); features are taken as of the end
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    params={
        "start": Param(None, type=["null", "string"], description="ISO 8601, UTC, whole hour"),
        "end": Param(None, type=["null", "string"], description="exclusive, ISO 8601, UTC"),
        "drivers_file": Param(
            None,
            type=["null", "string"],
            description="CSV of driver ids instead of the active drivers",
        ),
    },
    **dag_defaults(__doc__, "serving", "batch", "driver_ranking"),
)
def driver_batch_prediction() -> None:
    @task
    def score() -> dict[str, Any]:
        from model_serving.batch import run_batch_task

        return run_batch_task(get_current_context())

    score()


driver_batch_prediction()
