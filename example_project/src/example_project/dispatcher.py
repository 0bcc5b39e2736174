"""The example company's dispatcher: live bookings against the prediction API, and their outcomes.

This is the example project's product traffic (``example-project dispatch``; the launcher's
``traffic`` service). For each booking, at ``MLOPS_DISPATCH_RATE`` bookings a second:

1. draw ``MLOPS_DISPATCH_CANDIDATES`` distinct drivers of the example world;
2. ``POST /v1/predict`` with them (API key ``SERVING_API_KEY``);
3. assign the ranking's best driver, or — with probability ``MLOPS_DISPATCH_EXPLORE`` — a
   uniformly random scored candidate (exploration keeps the labels informative about the whole
   ranking, not only its top);
4. draw the trip's outcome from the example world's *true* completion model
   (``world.completion``) on the assigned driver's current online features, with the weights
   of ``MLOPS_EXAMPLE_SCENARIO`` at the booking's time (``concept_drift`` from
   ``MLOPS_EXAMPLE_DRIFT_START`` on);
5. report it with ``POST /v1/feedback`` after a label delay drawn from
   ``[MLOPS_DISPATCH_LABEL_DELAY_MIN_S, _MAX_S]`` (trips take time).

Bookings start once ``GET /health/ready`` answers 200 (a fresh platform has no champion for its
first minutes); from then on every request counts, and one answered 5xx or not answered at all is
a failure.

So the monitoring side sees predictions and later labels with a known ground truth, and a scenario
switch (``concept_drift``) really degrades a model trained before it. ``/metrics`` (port
``DISPATCH_METRICS_PORT``) counts bookings, requests by route and status, failures and trips.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

import httpx
import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from example_project.settings import ExampleProjectSettings
from example_project.world.completion import FEATURES, completion_probability, weights_at
from example_project.world.config import DRIVER_ID_OFFSET
from mlops_common.prometheus import Metric, MetricSet

log = logging.getLogger("example_project.dispatch")

#: seconds between readiness checks of the serving API before the first booking
READY_POLL_S = 3.0


class FeatureReader(Protocol):
    def __call__(self, driver_id: int) -> dict[str, Any] | None: ...


class DispatchMetrics(MetricSet):
    bookings: Annotated[
        Counter,
        Metric(
            "dispatch_bookings_total",
            "Bookings by outcome: assigned, no_scorable (409: no candidate could be scored), "
            "failed (the prediction request failed)",
            ("outcome",),
        ),
    ]
    requests: Annotated[
        Counter,
        Metric(
            "dispatch_requests_total",
            "Requests to the serving API by route and status (HTTP code, or 'error' when no "
            "answer came)",
            ("route", "status"),
        ),
    ]
    failures: Annotated[
        Counter,
        Metric(
            "dispatch_failed_requests_total",
            "Requests answered 5xx or not answered at all",
            ("route",),
        ),
    ]
    duration: Annotated[
        Histogram,
        Metric(
            "dispatch_request_duration_seconds",
            "Round trip of a serving API request as the client sees it",
            ("route",),
            (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        ),
    ]
    trips: Annotated[
        Counter,
        Metric(
            "dispatch_trips_total",
            "Assigned trips by outcome drawn from the true model",
            ("completed", "model_version"),
        ),
    ]
    pending: Annotated[
        Gauge,
        Metric(
            "dispatch_feedback_pending",
            "Outcomes waiting for their label delay",
        ),
    ]
    serving_ready: Annotated[
        Gauge,
        Metric(
            "dispatch_serving_ready",
            "1 once the serving API answered ready and bookings started, 0 while waiting for it",
        ),
    ]

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # with process_cpu_seconds_total, process_resident_memory_bytes, ... of this process
        super().__init__(registry or CollectorRegistry())


@dataclass(order=True)
class _Due:
    at: float
    body: dict[str, Any] = field(compare=False)


class Dispatcher:
    """One booking at a time, outcomes reported later (``run`` loops until ``stop`` is set)."""

    def __init__(
        self,
        settings: ExampleProjectSettings,
        client: httpx.Client,
        features: FeatureReader,
        metrics: DispatchMetrics | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.client = client
        self.features = features
        self.metrics = metrics or DispatchMetrics()
        self.rng = np.random.default_rng(settings.dispatch_seed)
        self._clock = clock
        self._now = now
        self._due: list[_Due] = []
        self.ready = False
        self._next_ready_check = 0.0
        self.driver_ids = np.arange(
            DRIVER_ID_OFFSET, DRIVER_ID_OFFSET + settings.example_drivers, dtype=np.int64
        )

    # -- HTTP ------------------------------------------------------------------------------
    def _post(self, route: str, body: dict[str, Any]) -> httpx.Response | None:
        began = time.perf_counter()
        try:
            response = self.client.post(route, json=body)
        except httpx.HTTPError as exc:
            self.metrics.requests.labels(route, "error").inc()
            self.metrics.failures.labels(route).inc()
            log.warning("%s failed: %s", route, exc)
            return None
        finally:
            self.metrics.duration.labels(route).observe(time.perf_counter() - began)
        self.metrics.requests.labels(route, str(response.status_code)).inc()
        if response.status_code >= 500:
            self.metrics.failures.labels(route).inc()
            log.warning("%s answered %s: %s", route, response.status_code, response.text[:300])
        elif response.status_code >= 400 and response.status_code != 409:
            log.warning("%s answered %s: %s", route, response.status_code, response.text[:300])
        return response

    # -- one booking ---------------------------------------------------------------------------
    def book(self) -> dict[str, Any] | None:
        """Ask for a ranking, assign, draw the outcome, queue its feedback; the feedback body,
        or None when nothing was assigned."""
        n = min(self.settings.dispatch_candidates, len(self.driver_ids))
        candidates = [int(d) for d in self.rng.choice(self.driver_ids, size=n, replace=False)]
        response = self._post("/v1/predict", {"driver_ids": candidates})
        if response is None or response.status_code >= 400:
            refused = response is not None and response.status_code == 409
            self.metrics.bookings.labels("no_scorable" if refused else "failed").inc()
            return None
        answer = response.json()
        scored = [int(item["driver_id"]) for item in answer["scores"]]
        if self.rng.random() < self.settings.dispatch_explore:
            assigned = scored[int(self.rng.integers(len(scored)))]
        else:
            assigned = int(answer["best_driver_id"])
        values = self.features(assigned)
        if values is None:  # gone from the online store since the ranking: nobody is assigned
            self.metrics.bookings.labels("no_scorable").inc()
            return None
        weights = weights_at(
            self.settings.example_scenario, self.settings.example_drift_start, self._now()
        )
        frame = pd.DataFrame([{name: values[name] for name in FEATURES}])
        p = float(completion_probability(frame, weights)[0])
        completed = bool(self.rng.random() < p)
        version = str(answer["model"]["version"])
        self.metrics.bookings.labels("assigned").inc()
        self.metrics.trips.labels(str(completed).lower(), version).inc()
        body = {
            "request_id": answer["request_id"],
            "driver_id": assigned,
            "trip_completed": completed,
        }
        low = self.settings.dispatch_label_delay_min_s
        high = self.settings.dispatch_label_delay_max_s
        delay = float(self.rng.uniform(low, high)) if high > low else low
        heapq.heappush(self._due, _Due(self._clock() + delay, body))
        self.metrics.pending.set(len(self._due))
        return body

    def send_due(self, *, everything: bool = False) -> int:
        """Send the feedback whose label delay has passed (all of it with ``everything``)."""
        sent = 0
        now = self._clock()
        while self._due and (everything or self._due[0].at <= now):
            due = heapq.heappop(self._due)
            self._post("/v1/feedback", due.body)
            sent += 1
        self.metrics.pending.set(len(self._due))
        return sent

    def wait_ready(self) -> bool:
        """True once serving answered ``/health/ready`` with 200 (checked every few seconds
        until then; never again after)."""
        if self.ready:
            return True
        now = self._clock()
        if now < self._next_ready_check:
            return False
        self._next_ready_check = now + READY_POLL_S
        try:
            self.ready = self.client.get("/health/ready").status_code == 200
        except httpx.HTTPError:
            self.ready = False
        if self.ready:
            log.info("serving is ready: bookings start")
        self.metrics.serving_ready.set(int(self.ready))
        return self.ready

    def run(self, stop: threading.Event, max_bookings: int | None = None) -> int:
        """Book at the configured rate until ``stop`` (or ``max_bookings``); then report every
        outcome still waiting. Returns the number of bookings attempted."""
        interval = 1.0 / self.settings.dispatch_rate
        next_at = self._clock()
        done = 0
        while not stop.is_set() and (max_bookings is None or done < max_bookings):
            self.send_due()
            wait = next_at - self._clock()
            if wait > 0 and stop.wait(wait):
                break
            if not self.wait_ready():
                next_at = self._clock() + interval
                continue
            self.book()
            done += 1
            next_at += interval
            if self._clock() - next_at > 1.0:  # far behind (a stall): do not burst to catch up
                next_at = self._clock()
        self.send_due(everything=True)
        return done


def online_feature_reader(settings: ExampleProjectSettings) -> FeatureReader:
    """The assigned driver's current features from the platform's online store, through the
    model's feature service (``MLOPS_DISPATCH_FEATURE_SERVICE``: the values serving ranked on)."""
    from mlops_common.features import feature_store

    store = feature_store(settings)
    service = store.get_feature_service(settings.dispatch_feature_service)

    def read(driver_id: int) -> dict[str, Any] | None:
        row = store.get_online_features(
            features=service, entity_rows=[{"driver_id": driver_id}]
        ).to_dict()
        values = {name: row[name][0] for name in FEATURES}
        return None if any(value is None for value in values.values()) else values

    return read


def serving_client(settings: ExampleProjectSettings) -> httpx.Client:
    return httpx.Client(
        base_url=settings.dispatch_serving_base_url,
        headers={"X-API-Key": settings.serving_api_key.get_secret_value()},
        timeout=settings.dispatch_timeout_s,
    )


def run_dispatcher(
    settings: ExampleProjectSettings, stop: threading.Event, max_bookings: int | None = None
) -> int:
    """The ``traffic`` service: ``/metrics`` on ``DISPATCH_METRICS_PORT`` (0: none), bookings
    against the serving API until ``stop`` (or ``max_bookings``); the bookings attempted."""
    from prometheus_client import start_http_server

    metrics = DispatchMetrics()
    server = None
    if settings.dispatch_metrics_port:
        server, _ = start_http_server(
            settings.dispatch_metrics_port, addr=settings.mlops_bind_host, registry=metrics.registry
        )
    try:
        with serving_client(settings) as client:
            dispatcher = Dispatcher(settings, client, online_feature_reader(settings), metrics)
            return dispatcher.run(stop, max_bookings)
    finally:
        if server is not None:
            server.shutdown()
