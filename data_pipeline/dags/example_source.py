"""Example source: write the next hour of the example world, so scheduled pipeline runs find data.

The example company's upstream systems (``example_project.emit``: this file only wires the
example's step into the platform's schedule). The run for ``[h - 1 h, h)`` (it starts at ``h``)
runs ``example-project emit --hour h``: the driver statistics delivered in ``[h, h + 1 h)`` —
which the ``driver_features`` run for that hour ingests at ``h + 1 h`` — and the bookings of
``[h - 1 h, h)``. The world is configured by
``MLOPS_EXAMPLE_SEED``, ``_DRIVERS``, ``_SCENARIO``, ``_BOOKINGS_PER_HOUR``, ``_DRIFT_START``.
Conf ``{"hour": "2024-01-01T05:00:00Z"}`` emits another hour (manual REST triggers); conf
``{"start": "...", "end": "..."}`` (whole UTC hours) writes that whole period of history, statistics
and bookings alike (``./run.sh all up`` does this on a fresh platform).

For history, generate a whole period at once instead:
``example-project generate --start … --end …``.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

from mlops_common.dags import dag_defaults, start_date_from_env

DAG_ID = "example_source"


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=start_date_from_env("MLOPS_DATA_DAG_START_DATE"),
    params={
        "hour": Param(None, type=["null", "string"], description="ISO 8601, whole UTC hour"),
        "start": Param(None, type=["null", "string"], description="history: first hour, UTC"),
        "end": Param(None, type=["null", "string"], description="history: end hour, exclusive"),
    },
    **dag_defaults(__doc__, "data", "example"),
)
def example_source() -> None:
    @task
    def emit() -> dict[str, Any]:
        from example_project.emit import emit_task

        return emit_task(get_current_context())

    emit()


example_source()
