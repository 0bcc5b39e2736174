"""The Grafana dashboards, defined once here and written as JSON to platform/grafana/dashboards.

Grafana provisions the JSON files (docker runtime). Each dashboard has a stable uid, every panel
reads the provisioned Prometheus datasource (uid ``prometheus``, the only datasource uid anywhere)
and every query is written to return a value on a healthy, running platform (the end-to-end test
runs each one against a real Prometheus scraping the real services and wants a non-empty answer;
`or vector(0)` marks series that legitimately do not exist while nothing is wrong).

    python -m mlops_platform.observability.dashboards          # rewrite the JSON files
    python -m mlops_platform.observability.dashboards --check  # exit 1 when a file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from mlops_platform.launcher.paths import PLATFORM_DIR

DASHBOARD_DIR = PLATFORM_DIR / "grafana" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
SCHEMA_VERSION = 39
GRID_WIDTH = 24


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # timeseries | stat
    width: int = 12
    height: int = 8
    description: str = ""
    decimals: int | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    tags: tuple[str, ...] = ("mlops",)
    variables: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def filename(self) -> str:
        return f"{self.uid}.json"


def q(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), legend)


def quantile(phi: float, buckets: str, by: str = "", legend: str = "") -> Query:
    """`histogram_quantile(phi, ...)` of a histogram's `_bucket` series, summed by `le` and `by`."""
    group = ", ".join(["le", *filter(None, [by])])
    return q(f"histogram_quantile({phi}, sum by ({group}) (rate({buckets}[5m])))", legend)


def panel(title: str, expr: str, legend: str = "", **options: Any) -> Panel:
    """A panel of one query; `options` are the other `Panel` fields."""
    return Panel(title, (q(expr, legend),), **options)


def stat(title: str, expr: str, legend: str = "", **options: Any) -> Panel:
    """A stat panel (the last value) of one query."""
    return panel(title, expr, legend, kind="stat", **options)


def or_zero(expr: str) -> str:
    """`expr`, or 0 while its series do not exist (nothing has happened: nothing is wrong)."""
    return f"{expr} or vector(0)"


def mean(histogram: str, by: str = "", window: str = "5m") -> str:
    """The mean observation of `histogram` (its `_sum` rate over its `_count` rate), by `by`."""
    total = f"sum by ({by}) " if by else "sum"
    return f"{total}(rate({histogram}_sum[{window}])) / {total}(rate({histogram}_count[{window}]))"


def mean_seconds(title: str, histogram: str, by: str, window: str) -> Panel:
    """A panel of the mean duration a seconds histogram records, one series per value of `by`."""
    return panel(title, mean(histogram, by, window), f"{{{{{by}}}}}", unit="s")


def completion_rate(by: str = "") -> str:
    """The share of example trips completed over 15 minutes, by `by`."""
    total = f"sum by ({by}) " if by else "sum"
    return (
        f'{total}(rate(dispatch_trips_total{{completed="true"}}[15m])) / '
        f"{total}(rate(dispatch_trips_total[15m]))"
    )


def percentiles(buckets: str, phis: tuple[float, ...]) -> tuple[Query, ...]:
    return tuple(quantile(phi, buckets, legend=f"p{round(phi * 100)}") for phi in phis)


PREDICT_DURATION = 'serving_request_duration_seconds_bucket{route="/v1/predict"}'
VERSION = "v{{model_version}}"
UNIT_INTERVAL: dict[str, Any] = {"min": 0, "max": 1}

# ------------------------------------------------------------------------------- dashboards

SERVING = Dashboard(
    uid="mlops-serving",
    title="Serving",
    description="The prediction API: traffic, errors, latency, per model version; the model "
    "lifecycle (loads, swaps, registry) and the prediction events.",
    rows=(
        Row(
            "Traffic and errors",
            (
                panel(
                    "Prediction requests by model version and status",
                    "sum by (model_version, status) "
                    '(rate(serving_requests_total{route="/v1/predict"}[5m]))',
                    "v{{model_version}} {{status}}",
                    unit="reqps",
                ),
                panel(
                    "Share of predictions answered 5xx",
                    or_zero("max(serving:predict_errors:ratio_rate5m)"),
                    "5xx share",
                    unit="percentunit",
                    min=0,
                ),
                panel(
                    "Feedback accepted by outcome",
                    "sum by (trip_completed) (rate(serving_feedback_total[5m]))",
                    "completed={{trip_completed}}",
                    unit="reqps",
                ),
                panel(
                    "Predictions by alias (champion / canary)",
                    "sum by (alias, model_version) (rate(serving_predictions_total[5m]))",
                    "{{alias}} v{{model_version}}",
                    unit="reqps",
                ),
            ),
        ),
        Row(
            "Latency",
            (
                Panel(
                    "Prediction latency percentiles (whole request)",
                    percentiles(PREDICT_DURATION, (0.5, 0.95, 0.99)),
                    unit="s",
                ),
                panel(
                    "p99 by model version",
                    "serving:predict_duration_seconds:p99_5m",
                    VERSION,
                    unit="s",
                ),
                Panel(
                    "Feature read p99",
                    (
                        quantile(
                            0.99,
                            "serving_feature_read_duration_seconds_bucket",
                            "reader",
                            "{{reader}}",
                        ),
                    ),
                    unit="s",
                ),
                Panel(
                    "Model call p99",
                    (
                        quantile(
                            0.99,
                            "serving_model_duration_seconds_bucket",
                            "model_version, role",
                            "v{{model_version}} {{role}}",
                        ),
                    ),
                    unit="s",
                ),
                panel(
                    "Requests in flight", "sum(serving_requests_in_flight)", "in flight", width=6
                ),
                panel(
                    "Candidates per request (mean)",
                    mean("serving_prediction_candidates"),
                    "candidates",
                    width=6,
                ),
                panel(
                    "Unscorable candidates by reason",
                    "sum by (reason) (rate(serving_unscorable_drivers_total[5m]))",
                    "{{reason}}",
                    unit="ops",
                ),
            ),
        ),
        Row(
            "Model lifecycle and events",
            (
                stat(
                    "Served model version",
                    "max by (alias, model_version) (serving_model_info)",
                    "{{alias}} v{{model_version}}",
                    width=6,
                ),
                stat(
                    "Registry reachable",
                    "min(serving_registry_reachable)",
                    "reachable",
                    **UNIT_INTERVAL,
                    width=6,
                ),
                panel(
                    "Model loads by outcome",
                    "sum by (alias, source, outcome) (increase(serving_model_loads_total[1h]))",
                    "{{alias}} {{source}} {{outcome}}",
                    width=6,
                ),
                panel(
                    "Mean score by model version",
                    mean("serving_prediction_score", by="model_version"),
                    VERSION,
                    width=6,
                    **UNIT_INTERVAL,
                ),
                Panel(
                    "Prediction events written / dropped",
                    (
                        q(
                            "sum by (type) (rate(serving_events_written_total[5m]))",
                            "written {{type}}",
                        ),
                        q(or_zero("sum(rate(serving_events_dropped_total[5m]))"), "dropped"),
                    ),
                    unit="ops",
                ),
                panel(
                    "Events buffered while the sink is down",
                    "sum(serving_events_buffered)",
                    "buffered",
                ),
            ),
        ),
    ),
)

PLATFORM = Dashboard(
    uid="mlops-platform",
    title="Pipelines and platform health",
    description="Scrape targets, firing alerts, Airflow DAG runs and tasks, the driver stats "
    "stream, the example traffic.",
    rows=(
        Row(
            "Health",
            (
                stat("Targets up", "sum(up)", "up", width=6),
                stat("Targets down", or_zero("count(up == 0)"), "down", width=6),
                stat(
                    "Alerts firing",
                    or_zero('count(ALERTS{alertstate="firing"})'),
                    "firing",
                    width=6,
                ),
                stat(
                    "Retraining decisions (24 h)",
                    "sum by (decision) (increase(monitoring_retraining_decisions_total[24h]))",
                    "{{decision}}",
                    width=6,
                ),
                panel(
                    "Scrape target up by job",
                    "min by (job) (up)",
                    "{{job}}",
                    width=24,
                    **UNIT_INTERVAL,
                ),
                panel(
                    "CPU of the platform's services",
                    "sum by (job) (rate(process_cpu_seconds_total[5m]))",
                    "{{job}}",
                    unit="percentunit",
                    description="cores used (1 = one core)",
                ),
                panel(
                    "Memory of the platform's services (RSS)",
                    "sum by (job) (process_resident_memory_bytes)",
                    "{{job}}",
                    unit="bytes",
                ),
            ),
        ),
        Row(
            "Airflow",
            (
                panel(
                    "DAG runs by DAG and state (1 h)",
                    "sum by (dag_id, state) (increase(airflow_dagrun_duration_seconds_count[1h]))",
                    "{{dag_id}} {{state}}",
                ),
                panel(
                    "Failed DAG runs (15 min)",
                    or_zero("sum(airflow:dagrun_failed:increase15m)"),
                    "failed",
                ),
                mean_seconds(
                    "Mean DAG run duration", "airflow_dagrun_duration_seconds", "dag_id", "1h"
                ),
                Panel(
                    "Scheduler, dag-processor and triggerer heartbeats",
                    (
                        q("rate(airflow_scheduler_heartbeat_total[5m])", "scheduler"),
                        q("rate(airflow_dag_processor_heartbeat_total[5m])", "dag-processor"),
                        q(or_zero("rate(airflow_triggerer_heartbeat_total[5m])"), "triggerer"),
                    ),
                    unit="ops",
                ),
                stat(
                    "DAG import errors",
                    "max(airflow_dag_processing_import_errors)",
                    "errors",
                    width=6,
                ),
                stat("DAGs loaded", "max(airflow_dagbag_size)", "dags", width=6),
                Panel(
                    "Executor slots",
                    (
                        q("max(airflow_executor_open_slots)", "open"),
                        q("max(airflow_executor_running_tasks)", "running"),
                    ),
                ),
            ),
        ),
        Row(
            "Stream and traffic",
            (
                Panel(
                    "Driver stats events",
                    (
                        q(
                            "sum by (kind) (rate(stream_producer_events_total[5m]))",
                            "produced {{kind}}",
                        ),
                        q(
                            "sum by (outcome) (rate(stream_consumer_events_total[5m]))",
                            "consumed {{outcome}}",
                        ),
                    ),
                    unit="ops",
                ),
                Panel(
                    "Consumer lag and pending entries",
                    (
                        q("max(stream_consumer_lag_entries)", "lag"),
                        q("max(stream_consumer_pending_entries)", "pending"),
                    ),
                ),
                panel(
                    "Age of the newest applied event",
                    "max(stream_consumer_event_age_seconds)",
                    "age",
                    unit="s",
                ),
                Panel(
                    "Example traffic: bookings by outcome",
                    (
                        q("sum by (outcome) (rate(dispatch_bookings_total[5m]))", "{{outcome}}"),
                        q(
                            or_zero("sum(rate(dispatch_failed_requests_total[5m]))"),
                            "failed requests",
                        ),
                    ),
                    unit="ops",
                ),
                panel(
                    "Example traffic: trip completion rate",
                    completion_rate(),
                    "completed",
                    unit="percentunit",
                    width=24,
                    **UNIT_INTERVAL,
                ),
            ),
        ),
    ),
)

CHAMPION = "and on (model_version) monitoring_champion_version == 1"


def champion(title: str, metric: str, **options: Any) -> Panel:
    """A quarter-width stat panel of `metric` for the served champion version only."""
    return stat(title, f"max by (model_version) ({metric} {CHAMPION})", VERSION, width=6, **options)


DRIFT = Dashboard(
    uid="mlops-drift",
    title="Data and prediction drift",
    description="Evidently drift per monitoring window against the served model's training "
    "reference: every feature, the share of drifted features, the score distribution.",
    rows=(
        Row(
            "The champion now",
            (
                stat(
                    "Champion version",
                    "max by (model_version) (monitoring_champion_version == 1)",
                    VERSION,
                    width=6,
                ),
                champion(
                    "Share of drifted features",
                    "monitoring_drift_share",
                    unit="percentunit",
                    **UNIT_INTERVAL,
                ),
                champion("Consecutive drifted windows", "monitoring_consecutive_drifted_windows"),
                champion(
                    "Dataset drift (1 = drifted)", "monitoring_dataset_drift", **UNIT_INTERVAL
                ),
            ),
        ),
        Row(
            "Per feature",
            (
                panel(
                    "Feature drift score (normed Wasserstein distance by default)",
                    "monitoring_feature_drift_score",
                    "v{{model_version}} {{feature}}",
                ),
                panel(
                    "Drifted features (1 = drifted)",
                    "monitoring_feature_drifted",
                    "v{{model_version}} {{feature}}",
                    **UNIT_INTERVAL,
                ),
                panel(
                    "Drift threshold per feature",
                    "monitoring_feature_drift_threshold",
                    "v{{model_version}} {{feature}}",
                ),
                panel(
                    "Share of drifted features per version",
                    "monitoring_drift_share",
                    VERSION,
                    unit="percentunit",
                    **UNIT_INTERVAL,
                ),
            ),
        ),
        Row(
            "Predictions",
            (
                panel(
                    "Prediction (score) drift",
                    "monitoring_prediction_drift_score",
                    "v{{model_version}} score",
                ),
                panel(
                    "Score drifted (1 = drifted)",
                    "monitoring_prediction_drifted",
                    VERSION,
                    **UNIT_INTERVAL,
                ),
                Panel(
                    "Rows per window",
                    (
                        q("monitoring_window_rows", "v{{model_version}} rows"),
                        q("monitoring_window_predictions", "v{{model_version}} predictions"),
                    ),
                ),
                panel(
                    "Windows closed by reason (1 h)",
                    "sum by (model_version, reason) (increase(monitoring_windows_total[1h]))",
                    "v{{model_version}} {{reason}}",
                ),
                mean_seconds(
                    "Evidently time per evaluation",
                    "monitoring_window_evaluation_seconds",
                    "stage",
                    "15m",
                ),
                panel("Reference rows of each version", "monitoring_reference_rows", VERSION),
            ),
        ),
    ),
)

QUALITY = Dashboard(
    uid="mlops-quality",
    title="Model quality",
    description="Classification quality per monitoring window on the trips whose outcome came "
    "back (feedback), label coverage and delay, and the trip completion rate.",
    rows=(
        Row(
            "The champion now",
            (
                stat(
                    "ROC AUC (5 min average)",
                    "max by (model_version) (monitoring:champion_roc_auc:avg5m)",
                    VERSION,
                    decimals=3,
                    width=6,
                ),
                champion("Label coverage", "monitoring_label_coverage", unit="percentunit"),
                champion("Labelled rows in the newest window", "monitoring_quality_labelled_rows"),
                stat(
                    "Trip completion rate (15 min)",
                    completion_rate(),
                    "completed",
                    unit="percentunit",
                    width=6,
                ),
            ),
        ),
        Row(
            "Per window",
            (
                panel(
                    "ROC AUC per model version",
                    "monitoring_quality_roc_auc",
                    VERSION,
                    min=0.5,
                    max=1,
                ),
                Panel(
                    "Precision, recall, F1, accuracy",
                    tuple(
                        q(f"monitoring_quality_{name}", f"v{{{{model_version}}}} {name}")
                        for name in ("precision", "recall", "f1", "accuracy")
                    ),
                    **UNIT_INTERVAL,
                ),
                Panel(
                    "Label delay percentiles",
                    percentiles("monitoring_label_delay_seconds_bucket", (0.5, 0.9, 0.99)),
                    unit="s",
                ),
                Panel(
                    "Labels: late and unmatched",
                    (
                        q(or_zero("sum(rate(monitoring_labels_late_total[15m]))"), "late / s"),
                        q("max(monitoring_labels_unmatched)", "unmatched"),
                    ),
                ),
                panel(
                    "Trip completion by model version (15 min)",
                    completion_rate(by="model_version"),
                    VERSION,
                    unit="percentunit",
                    **UNIT_INTERVAL,
                ),
                Panel(
                    "Monitoring events consumed",
                    (
                        q("sum by (type) (rate(monitoring_events_consumed_total[5m]))", "{{type}}"),
                        q("sum(monitoring_events_backlog)", "backlog"),
                    ),
                ),
            ),
        ),
    ),
)

EXPERIMENTS = Dashboard(
    uid="mlops-experiments",
    title="Experiments",
    description="Running A/B tests and bandits: the allocation per arm, outcomes and completion "
    "rate with its Wilson interval, the always-valid p-value, the verdict and the sample ratio "
    "check (monitoring_service/README.md#experiments). Zero while no experiment runs.",
    rows=(
        Row(
            "Verdict",
            (
                Panel(
                    "Verdict (1 = current)",
                    (
                        q(
                            "max by (experiment, verdict) (monitoring_experiment_verdict) "
                            "or vector(0)",
                            "{{experiment}} {{verdict}}",
                        ),
                    ),
                    kind="stat",
                    width=12,
                ),
                Panel(
                    "Sample ratio mismatch",
                    (
                        q(
                            "max by (experiment) (monitoring_experiment_srm) or vector(0)",
                            "{{experiment}}",
                        ),
                    ),
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Experiment routing active in serving",
                    (q("max(serving_experiment_active) or vector(0)", "active"),),
                    kind="stat",
                    width=6,
                ),
            ),
        ),
        Row(
            "Per arm",
            (
                Panel(
                    "Allocation (serving)",
                    (
                        q(
                            "max by (experiment, arm) (serving_experiment_allocation) or vector(0)",
                            "{{experiment}} {{arm}}",
                        ),
                    ),
                    unit="percentunit",
                ),
                Panel(
                    "Requests routed per second",
                    (
                        q(
                            "sum by (experiment, arm) "
                            "(rate(serving_experiment_requests_total[5m])) or vector(0)",
                            "{{experiment}} {{arm}}",
                        ),
                    ),
                    unit="reqps",
                ),
                Panel(
                    "Completion rate and 95% interval",
                    (
                        q(
                            "max by (experiment, arm, bound) "
                            "(monitoring_experiment_completion_rate) or vector(0)",
                            "{{experiment}} {{arm}} {{bound}}",
                        ),
                    ),
                    unit="percentunit",
                ),
                Panel(
                    "Labelled outcomes",
                    (
                        q(
                            "max by (experiment, arm) (monitoring_experiment_outcomes) "
                            "or vector(0)",
                            "{{experiment}} {{arm}}",
                        ),
                    ),
                ),
                Panel(
                    "Difference to the control",
                    (
                        q(
                            "max by (experiment, arm) (monitoring_experiment_difference) "
                            "or vector(0)",
                            "{{experiment}} {{arm}}",
                        ),
                    ),
                    unit="percentunit",
                ),
                Panel(
                    "Always-valid p-value",
                    (
                        q(
                            "min by (experiment, arm) (monitoring_experiment_p_value) or vector(1)",
                            "{{experiment}} {{arm}}",
                        ),
                    ),
                    min=0,
                    max=1,
                ),
            ),
        ),
        Row(
            "Guard metrics (all served versions)",
            (
                Panel(
                    "Prediction p99 latency by version",
                    (quantile(0.99, PREDICT_DURATION, "model_version", "v{{model_version}}"),),
                    unit="s",
                ),
                Panel(
                    "Unscorable candidates by version",
                    (
                        q(
                            "sum by (model_version) "
                            "(rate(serving_unscorable_drivers_total[5m])) or vector(0)",
                            "v{{model_version}}",
                        ),
                    ),
                ),
            ),
        ),
    ),
)

DASHBOARDS: tuple[Dashboard, ...] = (SERVING, DRIFT, QUALITY, PLATFORM, EXPERIMENTS)


# ------------------------------------------------------------------------------- rendering


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    for key in ("decimals", "min", "max"):
        value = getattr(panel, key)
        if value is not None:
            defaults[key] = value
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": dict(DATASOURCE),
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": dict(DATASOURCE),
                "expr": query.expr,
                "legendFormat": query.legend or "__auto",
                "range": panel.kind == "timeseries",
                "instant": panel.kind == "stat",
            }
            for i, query in enumerate(panel.queries)
        ],
    }
    if panel.kind == "stat":
        body["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "textMode": "auto",
        }
    else:
        body["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    return body


def build(dashboard: Dashboard) -> dict[str, Any]:
    """The Grafana JSON model of `dashboard`: rows as row panels, panels laid out left to right."""
    panels: list[dict[str, Any]] = []
    panel_id, y = 1, 0
    for row in dashboard.rows:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id, y = panel_id + 1, y + 1
        x, row_height = 0, 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                x, y = 0, y + row_height
                row_height = 0
            panels.append(_panel_json(panel, panel_id, x, y))
            panel_id += 1
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": list(dashboard.variables)},
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def rendered(dashboard: Dashboard) -> str:
    return json.dumps(build(dashboard), indent=2) + "\n"


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of a dashboard's JSON model."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    stale = []
    for dashboard in DASHBOARDS:
        path = DASHBOARD_DIR / dashboard.filename
        text = rendered(dashboard)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    for path in stale:
        print(
            f"{path} is not what mlops_platform.observability.dashboards builds: run "
            "`python -m mlops_platform.observability.dashboards`",
            file=sys.stderr,
        )
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
