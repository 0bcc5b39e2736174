"""The batch pipeline's steps by name, for the CLI, the DAG and tests alike.

``run_step(name, start, end, settings)`` runs one step on ``[start, end)`` and returns its summary
(a JSON-able dict). Errors: ``BadInput`` (exit code 2 in the CLI), ``ValidationFailed`` and
``StepFailed`` (exit 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from data_pipeline.batch.errors import BadInput
from data_pipeline.settings import DataPipelineSettings
from mlops_common.intervals import Interval

#: the steps in pipeline order
STEPS: tuple[str, ...] = ("ingest", "validate", "transform", "publish", "apply", "materialize")


def _ingest(settings: DataPipelineSettings, interval: Interval) -> dict[str, Any]:
    from data_pipeline.batch.ingest import ingest

    return ingest(settings, interval)


def _validate(settings: DataPipelineSettings, interval: Interval) -> dict[str, Any]:
    from data_pipeline.batch.validation import validate

    return validate(settings, interval)


def _transform(settings: DataPipelineSettings, interval: Interval) -> dict[str, Any]:
    from data_pipeline.batch.transform import transform

    return transform(settings, interval)


def _publish(settings: DataPipelineSettings, interval: Interval) -> dict[str, Any]:
    from data_pipeline.batch.publish import publish

    return publish(settings, interval)


def _apply(settings: DataPipelineSettings, interval: Interval | None) -> dict[str, Any]:
    from data_pipeline.feature_store import apply

    result = asdict(apply(settings))
    result["seconds"] = round(result["seconds"], 3)
    return {"step": "apply", **result}


def _materialize(settings: DataPipelineSettings, interval: Interval) -> dict[str, Any]:
    from data_pipeline.batch.materialize import materialize

    return materialize(settings, interval)


_INTERVAL_STEPS: dict[str, Callable[[DataPipelineSettings, Interval], dict[str, Any]]] = {
    "ingest": _ingest,
    "validate": _validate,
    "transform": _transform,
    "publish": _publish,
    "materialize": _materialize,
}


def run_step(
    name: str,
    start: str | datetime | None,
    end: str | datetime | None,
    settings: DataPipelineSettings | None = None,
) -> dict[str, Any]:
    """Run step ``name`` on ``[start, end)`` (``apply`` takes no interval)."""
    settings = settings or DataPipelineSettings()
    if name == "apply":
        return _apply(settings, None)
    if name not in _INTERVAL_STEPS:
        raise BadInput(f"unknown step {name!r}; expected one of {', '.join(STEPS)}")
    if start is None or end is None:
        raise BadInput(f"step {name} needs an interval: start and end")
    return _INTERVAL_STEPS[name](settings, Interval.of(start, end))


def run_all(
    start: str | datetime,
    end: str | datetime,
    settings: DataPipelineSettings | None = None,
) -> list[dict[str, Any]]:
    """Every step in order on ``[start, end)``; stops at the first failure (it raises)."""
    settings = settings or DataPipelineSettings()
    Interval.of(start, end)
    return [run_step(name, start, end, settings) for name in STEPS]
