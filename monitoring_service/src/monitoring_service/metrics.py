"""The service's Prometheus metrics, on a registry of its own (one per app instance).

Names start with ``monitoring_`` and are a contract (alert rules and dashboards use them; the
list is in the README). Per-window numbers carry ``model_version`` (the version that answered
the window's predictions) and, per feature, ``feature``. Gauges of a window hold the values of
the newest evaluated window of that version. Counters that count effects on the durable state
(events applied, windows, decisions) start from the totals persisted in the state database, so
they do not fall back to zero on a restart.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

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


class MonitoringMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        # process_cpu_seconds_total, process_resident_memory_bytes, ... of this process
        ProcessCollector(registry=r)
        # --- events --------------------------------------------------------------------------
        self.events_consumed = Counter(
            "monitoring_events_consumed_total",
            "Prediction and feedback events applied to the window state (exactly once), by type",
            ["type"],
            registry=r,
        )
        self.events_malformed = Counter(
            "monitoring_events_malformed_total",
            "Stream entries that are not valid events, moved to the dead-letter stream, by the "
            "stream they came from (prediction or feedback)",
            ["stream"],
            registry=r,
        )
        self.events_duplicate = Counter(
            "monitoring_events_duplicate_total",
            "Stream entries delivered again after they were applied (ignored), by stream",
            ["stream"],
            registry=r,
        )
        self.events_backlog = Gauge(
            "monitoring_events_backlog",
            "Entries of the stream not yet processed by the consumer group (lag + pending)",
            ["stream"],
            registry=r,
        )
        self.events_pending = Gauge(
            "monitoring_events_pending",
            "Entries delivered to the consumer group and not yet acknowledged",
            ["stream"],
            registry=r,
        )
        self.consumer_up = Gauge(
            "monitoring_consumer_up",
            "1 when the last read of the event streams succeeded, else 0",
            registry=r,
        )
        self.consumer_errors = Counter(
            "monitoring_consumer_errors_total",
            "Failed consumer iterations (broker or state store), by error type",
            ["error"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "monitoring_consumer_batch_seconds",
            "Persisting one batch of events (decode, SQLite commit, acknowledge)",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.last_event = Gauge(
            "monitoring_last_event_timestamp_seconds",
            "Event time of the newest prediction applied",
            registry=r,
        )
        # --- labels --------------------------------------------------------------------------
        self.label_delay = Histogram(
            "monitoring_label_delay_seconds",
            "Feedback time minus prediction time of each label joined to its prediction",
            ["model_version"],
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self.labels_late = Counter(
            "monitoring_labels_late_total",
            "Labels that arrived after their window's quality was computed (not counted in it)",
            ["model_version"],
            registry=r,
        )
        self.labels_unmatched = Gauge(
            "monitoring_labels_unmatched",
            "Stored labels whose prediction has not been seen",
            registry=r,
        )
        # --- windows -------------------------------------------------------------------------
        self.windows = Counter(
            "monitoring_windows_total",
            "Windows closed, by model version and reason (count, time)",
            ["model_version", "reason"],
            registry=r,
        )
        self.window_open_predictions = Gauge(
            "monitoring_window_open_predictions",
            "Predictions in the model version's open window",
            ["model_version"],
            registry=r,
        )
        self.evaluations = Counter(
            "monitoring_window_evaluations_total",
            "Window evaluations by stage (drift, quality) and outcome (ok, skipped, error)",
            ["stage", "outcome"],
            registry=r,
        )
        self.evaluation_seconds = Histogram(
            "monitoring_window_evaluation_seconds",
            "Evidently time of one window evaluation (report computed and saved), by stage",
            ["stage"],
            buckets=EVALUATION_BUCKETS,
            registry=r,
        )
        self.last_window = Gauge(
            "monitoring_last_window_timestamp_seconds",
            "Unix time of the newest window evaluation, by model version",
            ["model_version"],
            registry=r,
        )
        self.window_rows = Gauge(
            "monitoring_window_rows",
            "Scored candidate rows of the newest drift-evaluated window",
            ["model_version"],
            registry=r,
        )
        self.window_predictions = Gauge(
            "monitoring_window_predictions",
            "Predictions of the newest drift-evaluated window",
            ["model_version"],
            registry=r,
        )
        # --- drift ---------------------------------------------------------------------------
        self.feature_drift_score = Gauge(
            "monitoring_feature_drift_score",
            "Evidently drift score of a feature in the newest window (the method's statistic: "
            "a distance, or a p-value for ks/chisquare/z tests)",
            ["model_version", "feature"],
            registry=r,
        )
        self.feature_drift_threshold = Gauge(
            "monitoring_feature_drift_threshold",
            "Threshold of the feature's drift method",
            ["model_version", "feature"],
            registry=r,
        )
        self.feature_drifted = Gauge(
            "monitoring_feature_drifted",
            "1 when Evidently found the feature drifted in the newest window",
            ["model_version", "feature"],
            registry=r,
        )
        self.drift_share = Gauge(
            "monitoring_drift_share",
            "Share of the model's features drifted in the newest window",
            ["model_version"],
            registry=r,
        )
        self.drifted_features = Gauge(
            "monitoring_drifted_features",
            "Number of drifted features in the newest window",
            ["model_version"],
            registry=r,
        )
        self.dataset_drift = Gauge(
            "monitoring_dataset_drift",
            "1 when the share of drifted features reached MONITORING_DRIFT_SHARE",
            ["model_version"],
            registry=r,
        )
        self.prediction_drift_score = Gauge(
            "monitoring_prediction_drift_score",
            "Evidently drift score of the model's score distribution in the newest window",
            ["model_version"],
            registry=r,
        )
        self.prediction_drifted = Gauge(
            "monitoring_prediction_drifted",
            "1 when the score distribution drifted in the newest window",
            ["model_version"],
            registry=r,
        )
        self.consecutive_drifted = Gauge(
            "monitoring_consecutive_drifted_windows",
            "Consecutive newest windows with dataset drift, by model version",
            ["model_version"],
            registry=r,
        )
        # --- quality -------------------------------------------------------------------------
        self.quality = {
            name: Gauge(
                f"monitoring_quality_{name}",
                f"{name} of the labelled rows of the newest quality-evaluated window (NaN: "
                "too few labels)",
                ["model_version"],
                registry=r,
            )
            for name in QUALITY
        }
        self.quality_rows = Gauge(
            "monitoring_quality_labelled_rows",
            "Labelled rows the newest quality evaluation used",
            ["model_version"],
            registry=r,
        )
        self.label_coverage = Gauge(
            "monitoring_label_coverage",
            "Share of the newest quality-evaluated window's predictions with a label",
            ["model_version"],
            registry=r,
        )
        # --- reference -----------------------------------------------------------------------
        self.reference_rows = Gauge(
            "monitoring_reference_rows",
            "Rows of the reference data loaded for the model version",
            ["model_version"],
            registry=r,
        )
        self.reference_loads = Counter(
            "monitoring_reference_loads_total",
            "Reference loads by source (registry, cache) and outcome (ok, missing, unreachable)",
            ["source", "outcome"],
            registry=r,
        )
        self.champion = Gauge(
            "monitoring_champion_version",
            "1 for the version the champion alias points at",
            ["model_version"],
            registry=r,
        )
        self.registry_up = Gauge(
            "monitoring_registry_reachable",
            "1 when the last poll of the model registry succeeded, else 0",
            registry=r,
        )
        self.reports = Gauge(
            "monitoring_reports_stored", "Evidently HTML reports kept on disk", registry=r
        )
        # --- retraining trigger ----------------------------------------------------------------
        self.decisions = Counter(
            "monitoring_retraining_decisions_total",
            "Decisions on alert webhooks: triggered, skipped or error, with the reason",
            ["decision", "reason"],
            registry=r,
        )
        self.last_triggered = Gauge(
            "monitoring_retraining_last_triggered_timestamp_seconds",
            "Unix time of the last training run triggered",
            registry=r,
        )
        self.webhook_requests = Counter(
            "monitoring_webhook_requests_total",
            "Requests to the alert webhook by HTTP status",
            ["status"],
            registry=r,
        )
        self.consumer_up.set(0)
        self.registry_up.set(0)
