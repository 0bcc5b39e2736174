"""What the data pipeline's DAG tasks call: the run's interval and one step on it.

The DAG files import nothing heavy at module level; each task imports this module when it runs.
Airflow is imported lazily, so this module also loads (and is tested) without a running Airflow.

The interval of a run: the DAG run conf ``{"start": ..., "end": ...}`` (ISO 8601, UTC, whole
hours; both or neither) when given, else the run's data interval. A manually triggered run
(REST API with ``"logical_date": null``) has no data interval and must pass the conf.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from data_pipeline.batch.errors import BadInput, StepFailed, ValidationFailed
from mlops_common.intervals import resolve_interval


def run_task(step: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """Run ``step`` for the DAG run of ``context``; return its summary (the task's XCom).

    A rejected batch or bad conf fails the task at once, without retries
    (``AirflowFailException``); other errors fail it normally (retried when configured).
    """
    from airflow.sdk.exceptions import AirflowFailException

    from data_pipeline.batch.steps import run_step
    from data_pipeline.settings import DataPipelineSettings

    try:
        interval = resolve_interval(
            context.get("params"),
            context.get("data_interval_start"),
            context.get("data_interval_end"),
        )
        print(f"data-pipeline {step}: interval {interval}", flush=True)
        summary = run_step(step, interval.start, interval.end, DataPipelineSettings())
    except (BadInput, ValidationFailed) as exc:
        raise AirflowFailException(f"{step}: {exc}") from exc
    except StepFailed as exc:
        raise RuntimeError(f"{step}: {exc}") from exc
    output = summary.pop("output", None) if step == "apply" else None
    if output:
        print(output.rstrip(), flush=True)
    print(f"data-pipeline {step}: {summary}", flush=True)
    return summary
