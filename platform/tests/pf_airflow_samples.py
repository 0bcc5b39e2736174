"""The Airflow metrics the StatsD mapping must handle, shared by the mapping's tests
(test_monitoring_config: against the exporter process; test_statsd_bridge: the bridge's own
mapper and exporter): one sample per Airflow metric family, in the names Airflow sends, and the
Prometheus name and labels platform/prometheus/statsd_mapping.yml gives it."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import yaml


def airflow_registry() -> dict[str, dict[str, Any]]:
    """Airflow's own metric registry (names, legacy names, variables) from the installed package."""
    spec = find_spec("airflow")
    assert spec and spec.submodule_search_locations, "apache-airflow is not installed"
    path = (
        Path(next(iter(spec.submodule_search_locations)))
        / "_shared/observability/metrics/metrics_template.yaml"
    )
    assert path.is_file(), f"Airflow's metric registry moved: {path} is missing"
    return {m["name"]: m for m in yaml.safe_load(path.read_text())["metrics"]}


@dataclass(frozen=True)
class Sample:
    """One metric Airflow emits, and what the mapping must turn it into."""

    metric: str  # the name in Airflow's registry
    statsd_type: str  # c | g | ms
    value: float
    expected_name: str  # the Prometheus metric name the mapping gives it
    variables: dict[str, str] = field(default_factory=dict)  # the registry's name_variables
    expected_labels: dict[str, str] = field(default_factory=dict)

    def statsd_name(self, registry: dict[str, dict[str, Any]]) -> str:
        """The name Airflow sends: its legacy name (variables in it) if any, with the prefix."""
        entry = registry[self.metric]
        legacy = entry.get("legacy_name", "-")
        name = self.metric if legacy == "-" else legacy
        values = {k: v.replace(".", "__") for k, v in self.variables.items()}
        return "airflow." + name.format(**values)


# The name variables of most samples, and the labels they become.
DAG = {"dag_id": "training"}
TASK = {"dag_id": "training", "task_id": "train"}
WORKER = {"hostname": "worker-1"}

SAMPLES = [
    *(
        Sample(
            f"dagrun.duration.{state}",
            "ms",
            value,
            "airflow_dagrun_duration_seconds",
            DAG,
            {**DAG, "state": state},
        )
        for state, value in (("success", 1500), ("failed", 2500))
    ),
    Sample("dagrun.schedule_delay", "ms", 200, "airflow_dagrun_schedule_delay_seconds", DAG, DAG),
    Sample(
        "dagrun.first_task_scheduling_delay",
        "ms",
        300,
        "airflow_dagrun_first_task_scheduling_delay_seconds",
        DAG,
        DAG,
    ),
    Sample(
        "dagrun.dependency-check", "ms", 20, "airflow_dagrun_dependency_check_seconds", DAG, DAG
    ),
    Sample("scheduler.dagruns.running", "g", 2, "airflow_scheduler_dagruns_running"),
    Sample("ti.start", "c", 1, "airflow_ti_start_total", TASK, TASK),
    Sample(
        "ti.finish",
        "c",
        1,
        "airflow_ti_finish_total",
        {**TASK, "state": "failed"},
        {**TASK, "state": "failed"},
    ),
    # a task inside a task group: Airflow sends "grp.validate" as "grp__validate"
    Sample(
        "ti.finish",
        "c",
        1,
        "airflow_ti_finish_total",
        {"dag_id": "data_pipeline", "task_id": "grp.validate", "state": "success"},
        {"dag_id": "data_pipeline", "task_id": "grp__validate", "state": "success"},
    ),
    Sample("ti_successes", "c", 1, "airflow_ti_successes_total"),
    Sample("ti_failures", "c", 1, "airflow_ti_failures_total"),
    Sample("previously_succeeded", "c", 1, "airflow_ti_previously_succeeded_total"),
    Sample("task.duration", "ms", 4000, "airflow_task_duration_seconds", TASK, TASK),
    Sample(
        "task.scheduled_duration", "ms", 100, "airflow_task_scheduled_duration_seconds", TASK, TASK
    ),
    Sample("task.queued_duration", "ms", 100, "airflow_task_queued_duration_seconds", TASK, TASK),
    *(
        Sample(
            f"ti.{state}",
            "g",
            1,
            "airflow_task_instances",
            {"queue": "default", **TASK},
            {"state": state, "queue": "default", **TASK},
        )
        for state in ("scheduled", "queued", "running", "deferred")
    ),
    Sample(
        "scheduler.tasks.killed_externally",
        "c",
        1,
        "airflow_scheduler_tasks_killed_externally_total",
    ),
    *(
        Sample(
            f"operator_{outcome}",
            "c",
            1,
            f"airflow_operator_{outcome}_total",
            {"operator_name": operator},
            {"operator": operator},
        )
        for outcome, operator in (("failures", "PythonOperator"), ("successes", "BashOperator"))
    ),
    Sample("scheduler_heartbeat", "c", 1, "airflow_scheduler_heartbeat_total"),
    Sample("dag_processor_heartbeat", "c", 1, "airflow_dag_processor_heartbeat_total"),
    Sample("triggerer_heartbeat", "c", 1, "airflow_triggerer_heartbeat_total"),
    Sample("scheduler.tasks.starving", "g", 0, "airflow_scheduler_tasks_starving"),
    Sample("scheduler.tasks.executable", "g", 3, "airflow_scheduler_tasks_executable"),
    Sample(
        "scheduler.scheduler_loop_duration", "ms", 50, "airflow_scheduler_loop_duration_seconds"
    ),
    Sample(
        "scheduler.critical_section_duration",
        "ms",
        5,
        "airflow_scheduler_critical_section_duration_seconds",
    ),
    *(
        Sample(
            f"scheduler.orphaned_tasks.{action}",
            "c",
            1,
            "airflow_scheduler_orphaned_tasks_total",
            expected_labels={"action": action},
        )
        for action in ("cleared", "adopted")
    ),
    *(
        Sample(
            f"executor.{name}",
            "g",
            value,
            f"airflow_executor_{name}",
            {"executor_class_name": "LocalExecutor"},
            {"executor": "LocalExecutor"},
        )
        for name, value in (("open_slots", 28), ("queued_tasks", 1), ("running_tasks", 3))
    ),
    *(
        Sample(
            f"pool.{state}_slots",
            "g",
            4,
            "airflow_pool_slots",
            {"pool_name": "default_pool"},
            {"pool": "default_pool", "state": state},
        )
        for state in ("open", "queued", "running", "deferred", "scheduled")
    ),
    Sample(
        "pool.starving_tasks",
        "g",
        0,
        "airflow_pool_starving_tasks",
        {"pool_name": "default_pool"},
        {"pool": "default_pool"},
    ),
    Sample("dag_processing.import_errors", "g", 1, "airflow_dag_processing_import_errors"),
    Sample("dagbag_size", "g", 5, "airflow_dagbag_size"),
    Sample(
        "dag_processing.total_parse_time",
        "g",
        2.5,
        "airflow_dag_processing_total_parse_time_seconds",
    ),
    Sample(
        "dag_processing.file_path_queue_size", "g", 0, "airflow_dag_processing_file_path_queue_size"
    ),
    Sample(
        "dag_processing.processor_timeouts",
        "c",
        1,
        "airflow_dag_processing_processor_timeouts_total",
    ),
    Sample(
        "dag_processing.last_duration",
        "ms",
        800,
        "airflow_dag_processing_last_duration_seconds",
        {"bundle_name": "dags-folder", "file_name": "training_dag"},
        {"bundle": "dags-folder", "file": "training_dag"},
    ),
    Sample(
        "dag_processing.last_run.seconds_ago",
        "g",
        12,
        "airflow_dag_processing_last_run_seconds_ago",
        {"file_name": "training_dag"},
        {"file": "training_dag"},
    ),
    Sample("triggers.running", "g", 0, "airflow_triggers_running", WORKER, WORKER),
    Sample("triggers.succeeded", "c", 1, "airflow_triggers_succeeded_total"),
    Sample("triggers.failed", "c", 1, "airflow_triggers_failed_total"),
]

# Names Airflow also sends that must NOT be exported (modern duplicates without variables, a
# counter Airflow decrements, per-job counters).
DROPPED = [
    "airflow.ti.finish",
    "airflow.ti.start",
    "airflow.dagrun.duration.failed",
    "airflow.dagrun.duration.success",
    "airflow.task.duration",
    "airflow.executor.open_slots",
    "airflow.pool.open_slots",
    "airflow.operator_failures",
    "airflow.dag_processing.processes",
    "airflow.job_start",
]
