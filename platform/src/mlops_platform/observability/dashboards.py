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


PREDICT_DURATION = 'serving_request_duration_seconds_bucket{route="/v1/predict"}'

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
                Panel(
                    "Prediction requests by model version and status",
                    (
                        q(
                            "sum by (model_version, status) "
                            '(rate(serving_requests_total{route="/v1/predict"}[5m]))',
                            "v{{model_version}} {{status}}",
                        ),
                    ),
                    unit="reqps",
                ),
                Panel(
                    "Share of predictions answered 5xx",
                    (q("max(serving:predict_errors:ratio_rate5m) or vector(0)", "5xx share"),),
                    unit="percentunit",
                    min=0,
                ),
                Panel(
                    "Feedback accepted by outcome",
                    (
                        q(
                            "sum by (trip_completed) (rate(serving_feedback_total[5m]))",
                            "completed={{trip_completed}}",
                        ),
                    ),
                    unit="reqps",
                ),
                Panel(
                    "Predictions by alias (champion / canary)",
                    (
                        q(
                            "sum by (alias, model_version) (rate(serving_predictions_total[5m]))",
                            "{{alias}} v{{model_version}}",
                        ),
                    ),
                    unit="reqps",
                ),
            ),
        ),
        Row(
            "Latency",
            (
                Panel(
                    "Prediction latency percentiles (whole request)",
                    tuple(
                        quantile(phi, PREDICT_DURATION, legend=f"p{round(phi * 100)}")
                        for phi in (0.5, 0.95, 0.99)
                    ),
                    unit="s",
                ),
                Panel(
                    "p99 by model version",
                    (q("serving:predict_duration_seconds:p99_5m", "v{{model_version}}"),),
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
                Panel(
                    "Requests in flight",
                    (q("sum(serving_requests_in_flight)", "in flight"),),
                    width=6,
                ),
                Panel(
                    "Candidates per request (mean)",
                    (
                        q(
                            "sum(rate(serving_prediction_candidates_sum[5m])) / "
                            "sum(rate(serving_prediction_candidates_count[5m]))",
                            "candidates",
                        ),
                    ),
                    width=6,
                ),
                Panel(
                    "Unscorable candidates by reason",
                    (
                        q(
                            "sum by (reason) (rate(serving_unscorable_drivers_total[5m]))",
                            "{{reason}}",
                        ),
                    ),
                    unit="ops",
                ),
            ),
        ),
        Row(
            "Model lifecycle and events",
            (
                Panel(
                    "Served model version",
                    (
                        q(
                            "max by (alias, model_version) (serving_model_info)",
                            "{{alias}} v{{model_version}}",
                        ),
                    ),
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Registry reachable",
                    (q("min(serving_registry_reachable)", "reachable"),),
                    kind="stat",
                    width=6,
                    min=0,
                    max=1,
                ),
                Panel(
                    "Model loads by outcome",
                    (
                        q(
                            "sum by (alias, source, outcome) "
                            "(increase(serving_model_loads_total[1h]))",
                            "{{alias}} {{source}} {{outcome}}",
                        ),
                    ),
                    width=6,
                ),
                Panel(
                    "Mean score by model version",
                    (
                        q(
                            "sum by (model_version) (rate(serving_prediction_score_sum[5m])) / "
                            "sum by (model_version) (rate(serving_prediction_score_count[5m]))",
                            "v{{model_version}}",
                        ),
                    ),
                    width=6,
                    min=0,
                    max=1,
                ),
                Panel(
                    "Prediction events written / dropped",
                    (
                        q(
                            "sum by (type) (rate(serving_events_written_total[5m]))",
                            "written {{type}}",
                        ),
                        q("sum(rate(serving_events_dropped_total[5m])) or vector(0)", "dropped"),
                    ),
                    unit="ops",
                ),
                Panel(
                    "Events buffered while the sink is down",
                    (q("sum(serving_events_buffered)", "buffered"),),
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
                Panel("Targets up", (q("sum(up)", "up"),), kind="stat", width=6),
                Panel(
                    "Targets down",
                    (q("count(up == 0) or vector(0)", "down"),),
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Alerts firing",
                    (q('count(ALERTS{alertstate="firing"}) or vector(0)', "firing"),),
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Retraining decisions (24 h)",
                    (
                        q(
                            "sum by (decision) "
                            "(increase(monitoring_retraining_decisions_total[24h]))",
                            "{{decision}}",
                        ),
                    ),
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Scrape target up by job",
                    (q("min by (job) (up)", "{{job}}"),),
                    min=0,
                    max=1,
                    width=24,
                ),
                Panel(
                    "CPU of the platform's services",
                    (q("sum by (job) (rate(process_cpu_seconds_total[5m]))", "{{job}}"),),
                    unit="percentunit",
                    description="cores used (1 = one core)",
                ),
                Panel(
                    "Memory of the platform's services (RSS)",
                    (q("sum by (job) (process_resident_memory_bytes)", "{{job}}"),),
                    unit="bytes",
                ),
            ),
        ),
        Row(
            "Airflow",
            (
                Panel(
                    "DAG runs by DAG and state (1 h)",
                    (
                        q(
                            "sum by (dag_id, state) "
                            "(increase(airflow_dagrun_duration_seconds_count[1h]))",
                            "{{dag_id}} {{state}}",
                        ),
                    ),
                ),
                Panel(
                    "Failed DAG runs (15 min)",
                    (q("sum(airflow:dagrun_failed:increase15m) or vector(0)", "failed"),),
                ),
                Panel(
                    "Mean DAG run duration",
                    (
                        q(
                            "sum by (dag_id) (rate(airflow_dagrun_duration_seconds_sum[1h])) / "
                            "sum by (dag_id) (rate(airflow_dagrun_duration_seconds_count[1h]))",
                            "{{dag_id}}",
                        ),
                    ),
                    unit="s",
                ),
                Panel(
                    "Scheduler, dag-processor and triggerer heartbeats",
                    (
                        q("rate(airflow_scheduler_heartbeat_total[5m])", "scheduler"),
                        q("rate(airflow_dag_processor_heartbeat_total[5m])", "dag-processor"),
                        q("rate(airflow_triggerer_heartbeat_total[5m]) or vector(0)", "triggerer"),
                    ),
                    unit="ops",
                ),
                Panel(
                    "DAG import errors",
                    (q("max(airflow_dag_processing_import_errors)", "errors"),),
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "DAGs loaded", (q("max(airflow_dagbag_size)", "dags"),), kind="stat", width=6
                ),
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
                Panel(
                    "Age of the newest applied event",
                    (q("max(stream_consumer_event_age_seconds)", "age"),),
                    unit="s",
                ),
                Panel(
                    "Example traffic: bookings by outcome",
                    (
                        q("sum by (outcome) (rate(dispatch_bookings_total[5m]))", "{{outcome}}"),
                        q(
                            "sum(rate(dispatch_failed_requests_total[5m])) or vector(0)",
                            "failed requests",
                        ),
                    ),
                    unit="ops",
                ),
                Panel(
                    "Example traffic: trip completion rate",
                    (
                        q(
                            'sum(rate(dispatch_trips_total{completed="true"}[15m])) / '
                            "sum(rate(dispatch_trips_total[15m]))",
                            "completed",
                        ),
                    ),
                    unit="percentunit",
                    min=0,
                    max=1,
                    width=24,
                ),
            ),
        ),
    ),
)

CHAMPION = "and on (model_version) monitoring_champion_version == 1"

DRIFT = Dashboard(
    uid="mlops-drift",
    title="Data and prediction drift",
    description="Evidently drift per monitoring window against the served model's training "
    "reference: every feature, the share of drifted features, the score distribution.",
    rows=(
        Row(
            "The champion now",
            (
                Panel(
                    "Champion version",
                    (
                        q(
                            "max by (model_version) (monitoring_champion_version == 1)",
                            "v{{model_version}}",
                        ),
                    ),
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Share of drifted features",
                    (
                        q(
                            f"max by (model_version) (monitoring_drift_share {CHAMPION})",
                            "v{{model_version}}",
                        ),
                    ),
                    kind="stat",
                    unit="percentunit",
                    width=6,
                    min=0,
                    max=1,
                ),
                Panel(
                    "Consecutive drifted windows",
                    (
                        q(
                            "max by (model_version) "
                            f"(monitoring_consecutive_drifted_windows {CHAMPION})",
                            "v{{model_version}}",
                        ),
                    ),
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Dataset drift (1 = drifted)",
                    (
                        q(
                            f"max by (model_version) (monitoring_dataset_drift {CHAMPION})",
                            "v{{model_version}}",
                        ),
                    ),
                    kind="stat",
                    width=6,
                    min=0,
                    max=1,
                ),
            ),
        ),
        Row(
            "Per feature",
            (
                Panel(
                    "Feature drift score (normed Wasserstein distance by default)",
                    (q("monitoring_feature_drift_score", "v{{model_version}} {{feature}}"),),
                    width=12,
                ),
                Panel(
                    "Drifted features (1 = drifted)",
                    (q("monitoring_feature_drifted", "v{{model_version}} {{feature}}"),),
                    width=12,
                    min=0,
                    max=1,
                ),
                Panel(
                    "Drift threshold per feature",
                    (q("monitoring_feature_drift_threshold", "v{{model_version}} {{feature}}"),),
                    width=12,
                ),
                Panel(
                    "Share of drifted features per version",
                    (q("monitoring_drift_share", "v{{model_version}}"),),
                    unit="percentunit",
                    width=12,
                    min=0,
                    max=1,
                ),
            ),
        ),
        Row(
            "Predictions",
            (
                Panel(
                    "Prediction (score) drift",
                    (q("monitoring_prediction_drift_score", "v{{model_version}} score"),),
                ),
                Panel(
                    "Score drifted (1 = drifted)",
                    (q("monitoring_prediction_drifted", "v{{model_version}}"),),
                    min=0,
                    max=1,
                ),
                Panel(
                    "Rows per window",
                    (
                        q("monitoring_window_rows", "v{{model_version}} rows"),
                        q("monitoring_window_predictions", "v{{model_version}} predictions"),
                    ),
                ),
                Panel(
                    "Windows closed by reason (1 h)",
                    (
                        q(
                            "sum by (model_version, reason) "
                            "(increase(monitoring_windows_total[1h]))",
                            "v{{model_version}} {{reason}}",
                        ),
                    ),
                ),
                Panel(
                    "Evidently time per evaluation",
                    (
                        q(
                            "sum by (stage) "
                            "(rate(monitoring_window_evaluation_seconds_sum[15m])) / "
                            "sum by (stage) "
                            "(rate(monitoring_window_evaluation_seconds_count[15m]))",
                            "{{stage}}",
                        ),
                    ),
                    unit="s",
                ),
                Panel(
                    "Reference rows of each version",
                    (q("monitoring_reference_rows", "v{{model_version}}"),),
                ),
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
                Panel(
                    "ROC AUC (5 min average)",
                    (
                        q(
                            "max by (model_version) (monitoring:champion_roc_auc:avg5m)",
                            "v{{model_version}}",
                        ),
                    ),
                    kind="stat",
                    width=6,
                    decimals=3,
                ),
                Panel(
                    "Label coverage",
                    (
                        q(
                            f"max by (model_version) (monitoring_label_coverage {CHAMPION})",
                            "v{{model_version}}",
                        ),
                    ),
                    kind="stat",
                    unit="percentunit",
                    width=6,
                ),
                Panel(
                    "Labelled rows in the newest window",
                    (
                        q(
                            f"max by (model_version) (monitoring_quality_labelled_rows {CHAMPION})",
                            "v{{model_version}}",
                        ),
                    ),
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Trip completion rate (15 min)",
                    (
                        q(
                            'sum(rate(dispatch_trips_total{completed="true"}[15m])) / '
                            "sum(rate(dispatch_trips_total[15m]))",
                            "completed",
                        ),
                    ),
                    kind="stat",
                    unit="percentunit",
                    width=6,
                ),
            ),
        ),
        Row(
            "Per window",
            (
                Panel(
                    "ROC AUC per model version",
                    (q("monitoring_quality_roc_auc", "v{{model_version}}"),),
                    min=0.5,
                    max=1,
                ),
                Panel(
                    "Precision, recall, F1, accuracy",
                    (
                        q("monitoring_quality_precision", "v{{model_version}} precision"),
                        q("monitoring_quality_recall", "v{{model_version}} recall"),
                        q("monitoring_quality_f1", "v{{model_version}} f1"),
                        q("monitoring_quality_accuracy", "v{{model_version}} accuracy"),
                    ),
                    min=0,
                    max=1,
                ),
                Panel(
                    "Label delay percentiles",
                    tuple(
                        quantile(
                            phi,
                            "monitoring_label_delay_seconds_bucket",
                            legend=f"p{round(phi * 100)}",
                        )
                        for phi in (0.5, 0.9, 0.99)
                    ),
                    unit="s",
                ),
                Panel(
                    "Labels: late and unmatched",
                    (
                        q("sum(rate(monitoring_labels_late_total[15m])) or vector(0)", "late / s"),
                        q("max(monitoring_labels_unmatched)", "unmatched"),
                    ),
                ),
                Panel(
                    "Trip completion by model version (15 min)",
                    (
                        q(
                            "sum by (model_version) "
                            '(rate(dispatch_trips_total{completed="true"}[15m])) / '
                            "sum by (model_version) (rate(dispatch_trips_total[15m]))",
                            "v{{model_version}}",
                        ),
                    ),
                    unit="percentunit",
                    min=0,
                    max=1,
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
