"""The service's Prometheus metrics, on a registry of its own (one per app instance).

Names start with ``monitoring_`` and are a contract (alert rules and dashboards use them; the
list is in the README). Per-window numbers carry ``model_version`` (the version that answered
the window's predictions) and, per feature, ``feature``. Gauges of a window hold the values of
the newest evaluated window of that version. Counters that count effects on the durable state
(events applied, windows, decisions) start from the totals persisted in the state database, so
they do not fall back to zero on a restart.
"""

from __future__ import annotations

from mlops_common.prometheus import MetricFactory

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
    """Every metric of the service, as attributes (``metrics.windows.labels(...).inc()``)."""

    def __init__(self) -> None:
        # with process_cpu_seconds_total, process_resident_memory_bytes, ... of this process
        self._m = MetricFactory()
        self.registry = self._m.registry
        self._events()
        self._labels()
        self._windows()
        self._drift()
        self._quality()
        self._reference()
        self._trigger()
        self._experiments()
        self.consumer_up.set(0)
        self.registry_up.set(0)

    def _events(self) -> None:
        self.events_consumed = self._m.counter(
            "monitoring_events_consumed_total",
            "Prediction and feedback events applied to the window state (exactly once), by type",
            labels=("type",),
        )
        self.events_malformed = self._m.counter(
            "monitoring_events_malformed_total",
            "Stream entries that are not valid events, moved to the dead-letter stream, by the "
            "stream they came from (prediction or feedback)",
            labels=("stream",),
        )
        self.events_duplicate = self._m.counter(
            "monitoring_events_duplicate_total",
            "Stream entries delivered again after they were applied (ignored), by stream",
            labels=("stream",),
        )
        self.events_backlog = self._m.gauge(
            "monitoring_events_backlog",
            "Entries of the stream not yet processed by the consumer group (lag + pending)",
            labels=("stream",),
        )
        self.events_pending = self._m.gauge(
            "monitoring_events_pending",
            "Entries delivered to the consumer group and not yet acknowledged",
            labels=("stream",),
        )
        self.consumer_up = self._m.gauge(
            "monitoring_consumer_up", "1 when the last read of the event streams succeeded, else 0"
        )
        self.consumer_errors = self._m.counter(
            "monitoring_consumer_errors_total",
            "Failed consumer iterations (broker or state store), by error type",
            labels=("error",),
        )
        self.batch_seconds = self._m.histogram(
            "monitoring_consumer_batch_seconds",
            "Persisting one batch of events (decode, SQLite commit, acknowledge)",
            buckets=BATCH_BUCKETS,
        )
        self.last_event = self._m.gauge(
            "monitoring_last_event_timestamp_seconds", "Event time of the newest prediction applied"
        )

    def _labels(self) -> None:
        self.label_delay = self._m.histogram(
            "monitoring_label_delay_seconds",
            "Feedback time minus prediction time of each label joined to its prediction",
            labels=("model_version",),
            buckets=DELAY_BUCKETS,
        )
        self.labels_late = self._m.counter(
            "monitoring_labels_late_total",
            "Labels that arrived after their window's quality was computed (not counted in it)",
            labels=("model_version",),
        )
        self.labels_unmatched = self._m.gauge(
            "monitoring_labels_unmatched", "Stored labels whose prediction has not been seen"
        )

    def _windows(self) -> None:
        self.windows = self._m.counter(
            "monitoring_windows_total",
            "Windows closed, by model version and reason (count, time)",
            labels=("model_version", "reason"),
        )
        self.window_open_predictions = self._m.gauge(
            "monitoring_window_open_predictions",
            "Predictions in the model version's open window",
            labels=("model_version",),
        )
        self.evaluations = self._m.counter(
            "monitoring_window_evaluations_total",
            "Window evaluations by stage (drift, quality) and outcome (ok, skipped, error)",
            labels=("stage", "outcome"),
        )
        self.evaluation_seconds = self._m.histogram(
            "monitoring_window_evaluation_seconds",
            "Evidently time of one window evaluation (report computed and saved), by stage",
            labels=("stage",),
            buckets=EVALUATION_BUCKETS,
        )
        self.last_window = self._m.gauge(
            "monitoring_last_window_timestamp_seconds",
            "Unix time of the newest window evaluation, by model version",
            labels=("model_version",),
        )
        self.window_rows = self._m.gauge(
            "monitoring_window_rows",
            "Scored candidate rows of the newest drift-evaluated window",
            labels=("model_version",),
        )
        self.window_predictions = self._m.gauge(
            "monitoring_window_predictions",
            "Predictions of the newest drift-evaluated window",
            labels=("model_version",),
        )

    def _drift(self) -> None:
        self.feature_drift_score = self._m.gauge(
            "monitoring_feature_drift_score",
            "Evidently drift score of a feature in the newest window (the method's statistic: "
            "a distance, or a p-value for ks/chisquare/z tests)",
            labels=("model_version", "feature"),
        )
        self.feature_drift_threshold = self._m.gauge(
            "monitoring_feature_drift_threshold",
            "Threshold of the feature's drift method",
            labels=("model_version", "feature"),
        )
        self.feature_drifted = self._m.gauge(
            "monitoring_feature_drifted",
            "1 when Evidently found the feature drifted in the newest window",
            labels=("model_version", "feature"),
        )
        self.drift_share = self._m.gauge(
            "monitoring_drift_share",
            "Share of the model's features drifted in the newest window",
            labels=("model_version",),
        )
        self.drifted_features = self._m.gauge(
            "monitoring_drifted_features",
            "Number of drifted features in the newest window",
            labels=("model_version",),
        )
        self.dataset_drift = self._m.gauge(
            "monitoring_dataset_drift",
            "1 when the share of drifted features reached MONITORING_DRIFT_SHARE",
            labels=("model_version",),
        )
        self.prediction_drift_score = self._m.gauge(
            "monitoring_prediction_drift_score",
            "Evidently drift score of the model's score distribution in the newest window",
            labels=("model_version",),
        )
        self.prediction_drifted = self._m.gauge(
            "monitoring_prediction_drifted",
            "1 when the score distribution drifted in the newest window",
            labels=("model_version",),
        )
        self.consecutive_drifted = self._m.gauge(
            "monitoring_consecutive_drifted_windows",
            "Consecutive newest windows with dataset drift, by model version",
            labels=("model_version",),
        )

    def _quality(self) -> None:
        self.quality = {
            name: self._m.gauge(
                f"monitoring_quality_{name}",
                f"{name} of the labelled rows of the newest quality-evaluated window (NaN: "
                "too few labels)",
                labels=("model_version",),
            )
            for name in QUALITY
        }
        self.quality_rows = self._m.gauge(
            "monitoring_quality_labelled_rows",
            "Labelled rows the newest quality evaluation used",
            labels=("model_version",),
        )
        self.label_coverage = self._m.gauge(
            "monitoring_label_coverage",
            "Share of the newest quality-evaluated window's predictions with a label",
            labels=("model_version",),
        )

    def _reference(self) -> None:
        self.reference_rows = self._m.gauge(
            "monitoring_reference_rows",
            "Rows of the reference data loaded for the model version",
            labels=("model_version",),
        )
        self.reference_loads = self._m.counter(
            "monitoring_reference_loads_total",
            "Reference loads by source (registry, cache) and outcome (ok, missing, unreachable)",
            labels=("source", "outcome"),
        )
        self.champion = self._m.gauge(
            "monitoring_champion_version",
            "1 for the version the champion alias points at",
            labels=("model_version",),
        )
        self.registry_up = self._m.gauge(
            "monitoring_registry_reachable",
            "1 when the last poll of the model registry succeeded, else 0",
        )
        self.reports = self._m.gauge(
            "monitoring_reports_stored", "Evidently HTML reports kept on disk"
        )

    def _trigger(self) -> None:
        self.decisions = self._m.counter(
            "monitoring_retraining_decisions_total",
            "Decisions on alert webhooks: triggered, skipped or error, with the reason",
            labels=("decision", "reason"),
        )
        self.last_triggered = self._m.gauge(
            "monitoring_retraining_last_triggered_timestamp_seconds",
            "Unix time of the last training run triggered",
        )
        self.webhook_requests = self._m.counter(
            "monitoring_webhook_requests_total",
            "Requests to the alert webhook by HTTP status",
            labels=("status",),
        )

    def _experiments(self) -> None:
        """The running experiments' A/B readout (``monitoring_service.abtest``)."""
        arm = ("experiment", "arm")
        self.experiment_requests = self._m.gauge(
            "monitoring_experiment_requests",
            "Predictions an experiment routed to an arm",
            labels=arm,
        )
        self.experiment_outcomes = self._m.gauge(
            "monitoring_experiment_outcomes", "Labelled outcomes (feedback) of an arm", labels=arm
        )
        self.experiment_rate = self._m.gauge(
            "monitoring_experiment_completion_rate",
            "Trip completion rate of an arm's labelled outcomes, with bound=estimate, the Wilson "
            "interval's lower and upper",
            labels=(*arm, "bound"),
        )
        self.experiment_p_value = self._m.gauge(
            "monitoring_experiment_p_value",
            "Always-valid (mSPRT) p-value of an arm's difference to the control arm",
            labels=arm,
        )
        self.experiment_difference = self._m.gauge(
            "monitoring_experiment_difference",
            "An arm's completion rate minus the control arm's",
            labels=arm,
        )
        self.experiment_verdict = self._m.gauge(
            "monitoring_experiment_verdict",
            "1 for an experiment's current verdict (running, winner, no difference, harmful), "
            "0 for the others",
            labels=("experiment", "verdict"),
        )
        self.experiment_srm = self._m.gauge(
            "monitoring_experiment_srm",
            "1 when the requests per arm do not match the fixed allocation (chi-square p < "
            "0.001): the assignment is broken",
            labels=("experiment",),
        )
        self.experiment_allocation = self._m.gauge(
            "monitoring_experiment_allocation",
            "The allocation a bandit experiment's Thompson sampling wrote (share per arm)",
            labels=arm,
        )
        self.experiment_errors = self._m.counter(
            "monitoring_experiment_readout_errors_total",
            "Readouts of the experiments that failed (the store did not answer, ...)",
        )
