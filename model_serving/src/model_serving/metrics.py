"""The service's Prometheus metrics, on a registry of its own (one per app instance).

Every metric about a prediction carries ``model_version`` (the version that answered; ``none``
when no model could answer). Names start with ``serving_``.
"""

from __future__ import annotations

from typing import Annotated

from prometheus_client import Counter, Gauge, Histogram

from mlops_common.prometheus import Metric, MetricSet

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
#: the ``client`` label of a request that named no valid API key (or of an open route)
NO_CLIENT = "none"


class ServingMetrics(MetricSet):
    """The table of the service's metrics (``MetricSet``: one registry per instance, with
    process_cpu_seconds_total, ... of this process), and cached children per model version."""

    # HTTP requests (the edge).
    requests: Annotated[
        Counter,
        Metric(
            "serving_requests_total",
            "HTTP requests by route, method (unknown methods: other), status code, the model "
            "version that answered and the client (the API key's name; none without one)",
            ("route", "method", "status", "model_version", "client"),
        ),
    ]
    request_latency: Annotated[
        Histogram,
        Metric(
            "serving_request_duration_seconds",
            "Whole-request latency inside the service, by route, answering model version and "
            "client",
            ("route", "model_version", "client"),
            LATENCY_BUCKETS,
        ),
    ]
    in_flight: Annotated[
        Gauge,
        Metric(
            "serving_requests_in_flight",
            "Requests being handled right now",
        ),
    ]

    # The running experiment: its allocation and the requests it routed.
    experiment_requests: Annotated[
        Counter,
        Metric(
            "serving_experiment_requests_total",
            "Predict requests routed by a running experiment, by experiment and arm",
            ("experiment", "arm"),
        ),
    ]
    experiment_weight: Annotated[
        Gauge,
        Metric(
            "serving_experiment_allocation",
            "Share of the traffic each arm of the running experiment gets (fixed split or the "
            "bandit's latest allocation)",
            ("experiment", "arm"),
        ),
    ]
    experiment_active: Annotated[
        Gauge,
        Metric(
            "serving_experiment_active",
            "1 while a running experiment routes requests (all its arms loaded), else 0",
            (),
        ),
    ]
    experiment_refresh_errors: Annotated[
        Counter,
        Metric(
            "serving_experiment_refresh_errors_total",
            "Reads of the experiment store, or loads of an arm's model, that failed (what was "
            "routed stays as it was)",
            (),
        ),
    ]

    # One prediction: feature read, model call, outcome.
    feature_read_latency: Annotated[
        Histogram,
        Metric(
            "serving_feature_read_duration_seconds",
            "Online store read of one request's candidates, by reader (redis or feast)",
            ("reader",),
            FAST_BUCKETS,
        ),
    ]
    model_latency: Annotated[
        Histogram,
        Metric(
            "serving_model_duration_seconds",
            "Model call of one request, by model version and role (champion, challenger, shadow)",
            ("model_version", "role"),
            FAST_BUCKETS,
        ),
    ]
    predictions: Annotated[
        Counter,
        Metric(
            "serving_predictions_total",
            "Answered predictions by model version and alias (champion or challenger/canary)",
            ("model_version", "alias"),
        ),
    ]
    unscorable: Annotated[
        Counter,
        Metric(
            "serving_unscorable_drivers_total",
            "Candidates left out of a ranking: unknown to the online store, stale (older than "
            "the feature view's TTL) or invalid (corrupt, non-numeric or missing values the model "
            "does not accept)",
            ("reason", "model_version"),
        ),
    ]
    feature_read_timeouts: Annotated[
        Counter,
        Metric(
            "serving_feature_read_timeouts_total",
            "Predict requests answered 503 because the online store did not answer within "
            "SERVING_FEATURE_READ_TIMEOUT_S",
        ),
    ]
    no_scorable: Annotated[
        Counter,
        Metric(
            "serving_no_scorable_candidates_total",
            "Predict requests refused because no candidate could be scored",
            ("model_version",),
        ),
    ]

    # What the models answered, and the labels that came back.
    scores: Annotated[
        Histogram,
        Metric(
            "serving_prediction_score",
            "Distribution of the scores of every ranked candidate, by model version",
            ("model_version",),
            SCORE_BUCKETS,
        ),
    ]
    best_scores: Annotated[
        Histogram,
        Metric(
            "serving_prediction_best_score",
            "Score of the chosen (best) candidate, by model version",
            ("model_version",),
            SCORE_BUCKETS,
        ),
    ]
    candidates: Annotated[
        Histogram,
        Metric(
            "serving_prediction_candidates",
            "Candidates per predict request",
            (),
            (1, 2, 3, 5, 10, 20, 50, 100, 200, 500),
        ),
    ]
    feedback: Annotated[
        Counter,
        Metric(
            "serving_feedback_total",
            "Accepted feedback labels by outcome and the model version that answered the request",
            ("trip_completed", "model_version"),
        ),
    ]
    feedback_rejected: Annotated[
        Counter,
        Metric(
            "serving_feedback_rejected_total",
            "Refused feedback by reason: unknown_request (not answered by this process, or "
            "forgotten), expired (older than the feedback window), not_a_candidate",
            ("reason",),
        ),
    ]

    # Model loads and swaps.
    model_loads: Annotated[
        Counter,
        Metric(
            "serving_model_loads_total",
            "Model loads by alias, source (registry or cache) and outcome (success or failure)",
            ("alias", "source", "outcome"),
        ),
    ]
    model_load_refused: Annotated[
        Counter,
        Metric(
            "serving_model_load_refused_total",
            "Model versions refused at load: format (not skops), untrusted_type (outside the "
            "allowlist), signature (does not fit the estimator), positive_class",
            ("reason",),
        ),
    ]
    model_load_latency: Annotated[
        Histogram,
        Metric(
            "serving_model_load_duration_seconds",
            "Download, load and warm-up of one model version",
            ("alias",),
            LOAD_BUCKETS,
        ),
    ]
    model_swaps: Annotated[
        Counter,
        Metric(
            "serving_model_swaps_total",
            "Atomic switches of the served model per alias (promotions and rollbacks)",
            ("alias",),
        ),
    ]
    model_info: Annotated[
        Gauge,
        Metric(
            "serving_model_info",
            "The loaded model version per alias (value 1)",
            ("alias", "model_name", "model_version", "source"),
        ),
    ]
    model_loaded: Annotated[
        Gauge,
        Metric(
            "serving_model_loaded",
            "1 when a model is loaded for the alias",
            ("alias",),
        ),
    ]

    # The model registry as the watcher sees it.
    registry_up: Annotated[
        Gauge,
        Metric(
            "serving_registry_reachable",
            "1 when the last poll of the model registry succeeded, else 0",
        ),
    ]
    registry_polls: Annotated[
        Counter,
        Metric(
            "serving_registry_polls_total",
            "Polls of the model registry by outcome (ok or unreachable)",
            ("outcome",),
        ),
    ]
    registry_last_success: Annotated[
        Gauge,
        Metric(
            "serving_registry_last_success_timestamp_seconds",
            "Unix time of the last successful registry poll",
        ),
    ]

    # The event sink and shadow scoring.
    events_written: Annotated[
        Counter,
        Metric(
            "serving_events_written_total",
            "Events written to the sink, by type (prediction or feedback)",
            ("type",),
        ),
    ]
    events_dropped: Annotated[
        Counter,
        Metric(
            "serving_events_dropped_total",
            "Events lost: buffer full (sink slow or down), no sink configured, or not encodable",
            ("type", "reason"),
        ),
    ]
    events_buffered: Annotated[
        Gauge,
        Metric(
            "serving_events_buffered",
            "Events waiting in memory for the sink",
        ),
    ]
    sink_up: Annotated[
        Gauge,
        Metric(
            "serving_events_sink_up",
            "1 when the last write to the event sink succeeded, else 0",
        ),
    ]
    shadow: Annotated[
        Counter,
        Metric(
            "serving_shadow_predictions_total",
            "Shadow scorings of the challenger by outcome (ok, failed, skipped_queue_full, "
            "no_challenger)",
            ("outcome",),
        ),
    ]

    # The per-client API key store as serving last read it.
    api_keys_loaded: Annotated[
        Gauge,
        Metric(
            "serving_api_keys_loaded",
            "Per-client API keys read from the key store last (bootstrap key not counted)",
        ),
    ]
    api_keys_store_up: Annotated[
        Gauge,
        Metric(
            "serving_api_keys_store_up",
            "1 when the last read of the API key store succeeded, else 0",
        ),
    ]

    # The children of one answering model version (cached: label lookups take a lock).

    def __init__(self) -> None:
        super().__init__()
        for alias in ("champion", "challenger"):
            self.model_loaded.labels(alias).set(0)
        self.registry_up.set(0)
        self.sink_up.set(0)
        self._versions: dict[tuple[str, str], VersionMetrics] = {}
        self._requests: dict[tuple[str, str, str, str, str], tuple[Counter, Histogram]] = {}

    def api_keys_read(self, ok: bool, count: int) -> None:
        self.api_keys_store_up.set(1 if ok else 0)
        self.api_keys_loaded.set(count)

    def version(self, model_version: str, alias: str) -> VersionMetrics:
        """The children of one answering model version (cached: label lookups take a lock)."""
        key = (model_version, alias)
        found = self._versions.get(key)
        if found is None:
            found = self._versions[key] = VersionMetrics(self, model_version, alias)
        return found

    def request(
        self, route: str, method: str, status: str, model_version: str, client: str = NO_CLIENT
    ) -> tuple[Counter, Histogram]:
        key = (route, method, status, model_version, client)
        found = self._requests.get(key)
        if found is None:
            found = self._requests[key] = (
                self.requests.labels(route, method, status, model_version, client),
                self.request_latency.labels(route, model_version, client),
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
