"""The batch data pipeline: ingest → validate → transform → publish → apply → materialize.

Each step is a function of ``(settings, Interval)`` in its own module and a sub-command of the
``data-pipeline`` CLI; ``steps.run_step(name, start, end)`` runs one by name (what the DAG
calls). See ``docs/pipeline.md``.
"""

from data_pipeline.batch.errors import BadInput, StepFailed, ValidationFailed
from data_pipeline.batch.steps import STEPS, run_all, run_step
from mlops_common.intervals import Interval

__all__ = ["STEPS", "BadInput", "Interval", "StepFailed", "ValidationFailed", "run_all", "run_step"]
