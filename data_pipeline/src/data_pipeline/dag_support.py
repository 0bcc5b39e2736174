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
from mlops_common.intervals import ConfError, resolve_interval


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


def emit_task(context: Mapping[str, Any]) -> dict[str, Any]:
    """The ``example_source`` DAG's task: emit the period ``conf.start``/``conf.end`` (history,
    e.g. for a fresh platform), else the hour ``conf.hour``, else the data interval's end."""
    from airflow.sdk.exceptions import AirflowFailException

    from data_pipeline.example_source.emit import emit_hour, emit_period
    from data_pipeline.settings import DataPipelineSettings
    from mlops_common.intervals import parse_utc

    params = context.get("params") or {}
    try:
        if params.get("start") is not None or params.get("end") is not None:
            if params.get("hour") is not None:
                raise ConfError('conf gives "hour" and a period: give one of them')
            interval = resolve_interval(params, None, None)
            summary = emit_period(DataPipelineSettings(), interval.start, interval.end)
        else:
            if params.get("hour") is not None:
                hour = parse_utc(str(params["hour"]), "hour")
            elif context.get("data_interval_end") is not None:
                hour = parse_utc(context["data_interval_end"], "hour")
            else:
                raise ConfError(
                    'this run has no data interval: pass conf {"hour": "..."} or '
                    '{"start": "...", "end": "..."}'
                )
            summary = emit_hour(DataPipelineSettings(), hour)
    except (BadInput, ValueError) as exc:
        raise AirflowFailException(f"emit: {exc}") from exc
    print(f"data-pipeline emit: {summary}", flush=True)
    return summary
