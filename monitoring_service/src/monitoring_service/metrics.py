"""The service's Prometheus metrics, on a registry of its own (one per app instance).

Names start with ``monitoring_`` and are a contract (alert rules and dashboards use them; the
list is in the README). Per-window numbers carry ``model_version`` (the version that answered
the window's predictions) and, per feature, ``feature``. Gauges of a window hold the values of
the newest evaluated window of that version. Counters that count effects on the durable state
(events applied, windows, decisions) start from the totals persisted in the state database, so
they do not fall back to zero on a restart.
"""

from __future__ import annotations

from typing import Annotated

from prometheus_client import Counter, Gauge, Histogram

from mlops_common.prometheus import Metric, MetricFactory, MetricSet

DELAY_BUCKETS = (
    1.0,
    5.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    21600.0,
    86400.0,
)
EVALUATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

QUALITY = ("roc_auc", "precision", "recall", "f1", "accuracy")


class MonitoringMetrics(MetricSet):
    """Every metric of the service, as attributes (``metrics.windows.labels(...).inc()``): the
    table below (``MetricSet``: one registry per instance, with process_cpu_seconds_total,
    process_resident_memory_bytes, ... of this process) and the quality gauges by metric name."""

    # the event streams and their consumer
    events_consumed: Annotated[
        Counter,
        Metric(
            "monitoring_events_consumed_total",
            "Prediction and feedback events applied to the window state (exactly once), by type",
            ("type",),
        ),
    ]
    events_malformed: Annotated[
        Counter,
        Metric(
            "monitoring_events_malformed_total",
            "Stream entries that are not valid events, moved to the dead-letter stream, by the "
            "stream they came from (prediction or feedback)",
            ("stream",),
        ),
    ]
    events_duplicate: Annotated[
        Counter,
        Metric(
            "monitoring_events_duplicate_total",
            "Stream entries delivered again after they were applied (ignored), by stream",
            ("stream",),
        ),
    ]
    events_backlog: Annotated[
        Gauge,
        Metric(
            "monitoring_events_backlog",
            "Entries of the stream not yet processed by the consumer group (lag + pending)",
            ("stream",),
        ),
    ]
    events_pending: Annotated[
        Gauge,
        Metric(
            "monitoring_events_pending",
            "Entries delivered to the consumer group and not yet acknowledged",
            ("stream",),
        ),
    ]
    consumer_up: Annotated[
        Gauge,
        Metric(
            "monitoring_consumer_up",
            "1 when the last read of the event streams succeeded, else 0",
        ),
    ]
    consumer_errors: Annotated[
        Counter,
        Metric(
            "monitoring_consumer_errors_total",
            "Failed consumer iterations (broker or state store), by error type",
            ("error",),
        ),
    ]
    batch_seconds: Annotated[
        Histogram,
        Metric(
            "monitoring_consumer_batch_seconds",
            "Persisting one batch of events (decode, SQLite commit, acknowledge)",
            (),
            BATCH_BUCKETS,
        ),
    ]
    last_event: Annotated[
        Gauge,
        Metric(
            "monitoring_last_event_timestamp_seconds",
            "Event time of the newest prediction applied",
        ),
    ]

    # labels joined to predictions
    label_delay: Annotated[
        Histogram,
        Metric(
            "monitoring_label_delay_seconds",
            "Feedback time minus prediction time of each label joined to its prediction",
            ("model_version",),
            DELAY_BUCKETS,
        ),
    ]
    labels_late: Annotated[
        Counter,
        Metric(
            "monitoring_labels_late_total",
            "Labels that arrived after their window's quality was computed (not counted in it)",
            ("model_version",),
        ),
    ]
    labels_unmatched: Annotated[
        Gauge,
        Metric(
            "monitoring_labels_unmatched",
            "Stored labels whose prediction has not been seen",
        ),
    ]

    # windows and their evaluations
    windows: Annotated[
        Counter,
        Metric(
            "monitoring_windows_total",
            "Windows closed, by model version and reason (count, time)",
            ("model_version", "reason"),
        ),
    ]
    window_open_predictions: Annotated[
        Gauge,
        Metric(
            "monitoring_window_open_predictions",
            "Predictions in the model version's open window",
            ("model_version",),
        ),
    ]
    evaluations: Annotated[
        Counter,
        Metric(
            "monitoring_window_evaluations_total",
            "Window evaluations by stage (drift, quality) and outcome (ok, skipped, error)",
            ("stage", "outcome"),
        ),
    ]
    evaluation_seconds: Annotated[
        Histogram,
        Metric(
            "monitoring_window_evaluation_seconds",
            "Evidently time of one window evaluation (report computed and saved), by stage",
            ("stage",),
            EVALUATION_BUCKETS,
        ),
    ]
    last_window: Annotated[
        Gauge,
        Metric(
            "monitoring_last_window_timestamp_seconds",
            "Unix time of the newest window evaluation, by model version",
            ("model_version",),
        ),
    ]
    window_rows: Annotated[
        Gauge,
        Metric(
            "monitoring_window_rows",
            "Scored candidate rows of the newest drift-evaluated window",
            ("model_version",),
        ),
    ]
    window_predictions: Annotated[
        Gauge,
        Metric(
            "monitoring_window_predictions",
            "Predictions of the newest drift-evaluated window",
            ("model_version",),
        ),
    ]

    # drift of the newest window
    feature_drift_score: Annotated[
        Gauge,
        Metric(
            "monitoring_feature_drift_score",
            "Evidently drift score of a feature in the newest window (the method's statistic: "
            "a distance, or a p-value for ks/chisquare/z tests)",
            ("model_version", "feature"),
        ),
    ]
    feature_drift_threshold: Annotated[
        Gauge,
        Metric(
            "monitoring_feature_drift_threshold",
            "Threshold of the feature's drift method",
            ("model_version", "feature"),
        ),
    ]
    feature_drifted: Annotated[
        Gauge,
        Metric(
            "monitoring_feature_drifted",
            "1 when Evidently found the feature drifted in the newest window",
            ("model_version", "feature"),
        ),
    ]
    drift_share: Annotated[
        Gauge,
        Metric(
            "monitoring_drift_share",
            "Share of the model's features drifted in the newest window",
            ("model_version",),
        ),
    ]
    drifted_features: Annotated[
        Gauge,
        Metric(
            "monitoring_drifted_features",
            "Number of drifted features in the newest window",
            ("model_version",),
        ),
    ]
    dataset_drift: Annotated[
        Gauge,
        Metric(
            "monitoring_dataset_drift",
            "1 when the share of drifted features reached MONITORING_DRIFT_SHARE",
            ("model_version",),
        ),
    ]
    prediction_drift_score: Annotated[
        Gauge,
        Metric(
            "monitoring_prediction_drift_score",
            "Evidently drift score of the model's score distribution in the newest window",
            ("model_version",),
        ),
    ]
    prediction_drifted: Annotated[
        Gauge,
        Metric(
            "monitoring_prediction_drifted",
            "1 when the score distribution drifted in the newest window",
            ("model_version",),
        ),
    ]
    consecutive_drifted: Annotated[
        Gauge,
        Metric(
            "monitoring_consecutive_drifted_windows",
            "Consecutive newest windows with dataset drift, by model version",
            ("model_version",),
        ),
    ]

    # quality of the newest window (and the per-metric gauges, made in __init__)
    quality_rows: Annotated[
        Gauge,
        Metric(
            "monitoring_quality_labelled_rows",
            "Labelled rows the newest quality evaluation used",
            ("model_version",),
        ),
    ]
    label_coverage: Annotated[
        Gauge,
        Metric(
            "monitoring_label_coverage",
            "Share of the newest quality-evaluated window's predictions with a label",
            ("model_version",),
        ),
    ]

    # reference data and the registry
    reference_rows: Annotated[
        Gauge,
        Metric(
            "monitoring_reference_rows",
            "Rows of the reference data loaded for the model version",
            ("model_version",),
        ),
    ]
    reference_loads: Annotated[
        Counter,
        Metric(
            "monitoring_reference_loads_total",
            "Reference loads by source (registry, cache) and outcome (ok, missing, unreachable)",
            ("source", "outcome"),
        ),
    ]
    champion: Annotated[
        Gauge,
        Metric(
            "monitoring_champion_version",
            "1 for the version the champion alias points at",
            ("model_version",),
        ),
    ]
    registry_up: Annotated[
        Gauge,
        Metric(
            "monitoring_registry_reachable",
            "1 when the last poll of the model registry succeeded, else 0",
        ),
    ]
    reports: Annotated[
        Gauge,
        Metric(
            "monitoring_reports_stored",
            "Evidently HTML reports kept on disk",
        ),
    ]

    # the retraining trigger
    decisions: Annotated[
        Counter,
        Metric(
            "monitoring_retraining_decisions_total",
            "Decisions on alert webhooks: triggered, skipped or error, with the reason",
            ("decision", "reason"),
        ),
    ]
    last_triggered: Annotated[
        Gauge,
        Metric(
            "monitoring_retraining_last_triggered_timestamp_seconds",
            "Unix time of the last training run triggered",
        ),
    ]
    webhook_requests: Annotated[
        Counter,
        Metric(
            "monitoring_webhook_requests_total",
            "Requests to the alert webhook by HTTP status",
            ("status",),
        ),
    ]
    # The running experiments' A/B readout (monitoring_service.abtest).
    experiment_requests: Annotated[
        Gauge,
        Metric(
            "monitoring_experiment_requests",
            "Predictions an experiment routed to an arm",
            ("experiment", "arm"),
        ),
    ]
    experiment_outcomes: Annotated[
        Gauge,
        Metric(
            "monitoring_experiment_outcomes",
            "Labelled outcomes (feedback) of an arm",
            ("experiment", "arm"),
        ),
    ]
    experiment_rate: Annotated[
        Gauge,
        Metric(
            "monitoring_experiment_completion_rate",
            "Trip completion rate of an arm's labelled outcomes, with bound=estimate, the Wilson "
            "interval's lower and upper",
            ("experiment", "arm", "bound"),
        ),
    ]
    experiment_p_value: Annotated[
        Gauge,
        Metric(
            "monitoring_experiment_p_value",
            "Always-valid (mSPRT) p-value of an arm's difference to the control arm",
            ("experiment", "arm"),
        ),
    ]
    experiment_difference: Annotated[
        Gauge,
        Metric(
            "monitoring_experiment_difference",
            "An arm's completion rate minus the control arm's",
            ("experiment", "arm"),
        ),
    ]
    experiment_verdict: Annotated[
        Gauge,
        Metric(
            "monitoring_experiment_verdict",
            "1 for an experiment's current verdict (running, winner, no difference, harmful), "
            "0 for the others",
            ("experiment", "verdict"),
        ),
    ]
    experiment_srm: Annotated[
        Gauge,
        Metric(
            "monitoring_experiment_srm",
            "1 when the requests per arm do not match the fixed allocation (chi-square p < "
            "0.001): the assignment is broken",
            ("experiment",),
        ),
    ]
    experiment_allocation: Annotated[
        Gauge,
        Metric(
            "monitoring_experiment_allocation",
            "The allocation a bandit experiment's Thompson sampling wrote (share per arm)",
            ("experiment", "arm"),
        ),
    ]
    experiment_errors: Annotated[
        Counter,
        Metric(
            "monitoring_experiment_readout_errors_total",
            "Readouts of the experiments that failed (the store did not answer, ...)",
            (),
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        factory = MetricFactory(self.registry, process=False)
        self.quality = {
            name: factory.gauge(
                f"monitoring_quality_{name}",
                f"{name} of the labelled rows of the newest quality-evaluated window (NaN: "
                "too few labels)",
                labels=("model_version",),
            )
            for name in QUALITY
        }
        self.consumer_up.set(0)
        self.registry_up.set(0)
