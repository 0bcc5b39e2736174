"""The service's Prometheus metrics, on a registry of its own (one per app instance).

Every metric about a prediction carries ``model_version`` (the version that answered; ``none``
when no model could answer). Names start with ``serving_``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
FAST_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.5,
)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)

NO_MODEL = "none"


class ServingMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        # process_cpu_seconds_total, process_resident_memory_bytes, ... of this process
        ProcessCollector(registry=r)
        self._http(r)
        self._predictions(r)
        self._scores(r)
        self._models(r)
        self._registry(r)
        self._events(r)
        for alias in ("champion", "challenger"):
            self.model_loaded.labels(alias).set(0)
        self.registry_up.set(0)
        self.sink_up.set(0)
        self._versions: dict[tuple[str, str], VersionMetrics] = {}
        self._requests: dict[tuple[str, str, str, str], tuple[Counter, Histogram]] = {}

    def _http(self, r: CollectorRegistry) -> None:
        """HTTP requests (the edge)."""
        self.requests = Counter(
            "serving_requests_total",
            "HTTP requests by route, method, status code and the model version that answered",
            ["route", "method", "status", "model_version"],
            registry=r,
        )
        self.request_latency = Histogram(
            "serving_request_duration_seconds",
            "Whole-request latency inside the service, by route and answering model version",
            ["route", "model_version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "serving_requests_in_flight", "Requests being handled right now", registry=r
        )

    def _predictions(self, r: CollectorRegistry) -> None:
        """One prediction: feature read, model call, outcome."""
        self.feature_read_latency = Histogram(
            "serving_feature_read_duration_seconds",
            "Online store read of one request's candidates, by reader (redis or feast)",
            ["reader"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.model_latency = Histogram(
            "serving_model_duration_seconds",
            "Model call of one request, by model version and role (champion, challenger, shadow)",
            ["model_version", "role"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "serving_predictions_total",
            "Answered predictions by model version and alias (champion or challenger/canary)",
            ["model_version", "alias"],
            registry=r,
        )
        self.unscorable = Counter(
            "serving_unscorable_drivers_total",
            "Candidates left out of a ranking: unknown to the online store, stale (older than "
            "the feature view's TTL) or invalid (corrupt, non-numeric or missing values the model "
            "does not accept)",
            ["reason", "model_version"],
            registry=r,
        )
        self.feature_read_timeouts = Counter(
            "serving_feature_read_timeouts_total",
            "Predict requests answered 503 because the online store did not answer within "
            "SERVING_FEATURE_READ_TIMEOUT_S",
            registry=r,
        )
        self.no_scorable = Counter(
            "serving_no_scorable_candidates_total",
            "Predict requests refused because no candidate could be scored",
            ["model_version"],
            registry=r,
        )

    def _scores(self, r: CollectorRegistry) -> None:
        """What the models answered, and the labels that came back."""
        self.scores = Histogram(
            "serving_prediction_score",
            "Distribution of the scores of every ranked candidate, by model version",
            ["model_version"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.best_scores = Histogram(
            "serving_prediction_best_score",
            "Score of the chosen (best) candidate, by model version",
            ["model_version"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.candidates = Histogram(
            "serving_prediction_candidates",
            "Candidates per predict request",
            buckets=(1, 2, 3, 5, 10, 20, 50, 100, 200, 500),
            registry=r,
        )
        self.feedback = Counter(
            "serving_feedback_total",
            "Accepted feedback labels by outcome and the model version that answered the request "
            "(none when not remembered)",
            ["trip_completed", "model_version"],
            registry=r,
        )

    def _models(self, r: CollectorRegistry) -> None:
        """Model loads and swaps."""
        self.model_loads = Counter(
            "serving_model_loads_total",
            "Model loads by alias, source (registry or cache) and outcome (success or failure)",
            ["alias", "source", "outcome"],
            registry=r,
        )
        self.model_load_refused = Counter(
            "serving_model_load_refused_total",
            "Model versions refused at load: format (not skops), untrusted_type (outside the "
            "allowlist), signature (does not fit the estimator), positive_class",
            ["reason"],
            registry=r,
        )
        self.model_load_latency = Histogram(
            "serving_model_load_duration_seconds",
            "Download, load and warm-up of one model version",
            ["alias"],
            buckets=LOAD_BUCKETS,
            registry=r,
        )
        self.model_swaps = Counter(
            "serving_model_swaps_total",
            "Atomic switches of the served model per alias (promotions and rollbacks)",
            ["alias"],
            registry=r,
        )
        self.model_info = Gauge(
            "serving_model_info",
            "The loaded model version per alias (value 1)",
            ["alias", "model_name", "model_version", "source"],
            registry=r,
        )
        self.model_loaded = Gauge(
            "serving_model_loaded",
            "1 when a model is loaded for the alias",
            ["alias"],
            registry=r,
        )

    def _registry(self, r: CollectorRegistry) -> None:
        """The model registry as the watcher sees it."""
        self.registry_up = Gauge(
            "serving_registry_reachable",
            "1 when the last poll of the model registry succeeded, else 0",
            registry=r,
        )
        self.registry_polls = Counter(
            "serving_registry_polls_total",
            "Polls of the model registry by outcome (ok or unreachable)",
            ["outcome"],
            registry=r,
        )
        self.registry_last_success = Gauge(
            "serving_registry_last_success_timestamp_seconds",
            "Unix time of the last successful registry poll",
            registry=r,
        )

    def _events(self, r: CollectorRegistry) -> None:
        """The event sink and shadow scoring."""
        self.events_written = Counter(
            "serving_events_written_total",
            "Events written to the sink, by type (prediction or feedback)",
            ["type"],
            registry=r,
        )
        self.events_dropped = Counter(
            "serving_events_dropped_total",
            "Events lost: buffer full (sink slow or down), no sink configured, or not encodable",
            ["type", "reason"],
            registry=r,
        )
        self.events_buffered = Gauge(
            "serving_events_buffered", "Events waiting in memory for the sink", registry=r
        )
        self.sink_up = Gauge(
            "serving_events_sink_up",
            "1 when the last write to the event sink succeeded, else 0",
            registry=r,
        )
        self.shadow = Counter(
            "serving_shadow_predictions_total",
            "Shadow scorings of the challenger by outcome (ok, failed, skipped_queue_full, "
            "no_challenger)",
            ["outcome"],
            registry=r,
        )

    def version(self, model_version: str, alias: str) -> VersionMetrics:
        """The children of one answering model version (cached: label lookups take a lock)."""
        key = (model_version, alias)
        found = self._versions.get(key)
        if found is None:
            found = self._versions[key] = VersionMetrics(self, model_version, alias)
        return found

    def request(
        self, route: str, method: str, status: str, model_version: str
    ) -> tuple[Counter, Histogram]:
        key = (route, method, status, model_version)
        found = self._requests.get(key)
        if found is None:
            found = self._requests[key] = (
                self.requests.labels(route, method, status, model_version),
                self.request_latency.labels(route, model_version),
            )
        return found


class VersionMetrics:
    """Metric children of one model version answering under one alias."""

    def __init__(self, m: ServingMetrics, model_version: str, alias: str) -> None:
        self.model_latency = m.model_latency.labels(model_version, alias)
        self.predictions = m.predictions.labels(model_version, alias)
        self.best_score = m.best_scores.labels(model_version)
        self.scores = m.scores.labels(model_version)
        self.unknown = m.unscorable.labels("unknown", model_version)
        self.stale = m.unscorable.labels("stale", model_version)
        self.invalid = m.unscorable.labels("invalid", model_version)
        self.no_scorable = m.no_scorable.labels(model_version)
