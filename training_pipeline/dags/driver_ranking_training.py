"""Train, evaluate, register and gate the driver ranking model.

build_training_set → validate → train → evaluate → register → gate. Every task calls a step of
the ``training-pipeline`` CLI (``training_pipeline.steps``); the steps exchange data through one
run folder per DAG run, ``$MLOPS_DATA_DIR/training/runs/driver_ranking_training/<run_id>``.

Conf (all optional): ``window_start``, ``window_end`` (ISO 8601), ``window_days``; ``gate_mode``
(``disabled`` | ``dry_run`` | ``enabled``); ``overrides`` (run configuration, e.g.
``{"estimator": {"hyperparameters": {"max_iter": 50}}}``); ``alert`` (the payload of the alert
that triggered the run); ``reason``.

The gate task ends green only when it moved an alias. A refused candidate fails it (or skips it
when ``gate.on_refusal`` is ``skip``); ``disabled`` and ``dry_run`` skip it. The reason is the
task's message and is tagged on the model version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from mlops_common.dags import dag_defaults

DAG_ID = "driver_ranking_training"


def _conf() -> dict[str, Any]:
    return dict(get_current_context()["params"])


@dag(
    dag_id=DAG_ID,
    schedule=None,
    start_date=datetime(2024, 1, 1),
    params={
        "window_start": Param(None, type=["null", "string"], description="ISO 8601, UTC"),
        "window_end": Param(None, type=["null", "string"], description="ISO 8601, exclusive"),
        "window_days": Param(None, type=["null", "number"], description="window length"),
        "gate_mode": Param(
            None, type=["null", "string"], enum=[None, "disabled", "dry_run", "enabled"]
        ),
        "overrides": Param(None, type=["null", "object"], description="run configuration"),
        "alert": Param(None, type=["null", "object"], description="triggering alert payload"),
        "reason": Param(None, type=["null", "string"], description="why this run"),
    },
    **dag_defaults(__doc__, "training", "driver_ranking"),
)
def driver_ranking_training() -> None:
    @task
    def build_training_set() -> str:
        from training_pipeline.dag_support import build_task

        context = get_current_context()
        return build_task(_conf(), dag_id=DAG_ID, run_id=str(context["run_id"]))

    @task(retries=0)
    def validate(run_dir: str) -> str:
        from training_pipeline.dag_support import validate_task

        return validate_task(run_dir)

    @task
    def train(run_dir: str) -> str:
        from training_pipeline.dag_support import train_task

        return train_task(run_dir)

    @task
    def evaluate(run_dir: str) -> str:
        from training_pipeline.dag_support import evaluate_task

        return evaluate_task(run_dir)

    @task
    def register(run_dir: str) -> str:
        from training_pipeline.dag_support import register_task

        return register_task(run_dir)

    @task(retries=0)
    def gate(run_dir: str) -> dict[str, Any]:
        from training_pipeline.dag_support import gate_task

        context = get_current_context()
        return gate_task(run_dir, _conf(), dag_id=DAG_ID, run_id=str(context["run_id"]))

    gate(register(evaluate(train(validate(build_training_set())))))


driver_ranking_training()
