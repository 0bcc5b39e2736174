"""Prometheus metrics of the stream consumer (one registry per consumer, served on /metrics).

``ConsumerMetrics`` is also the consumer core's ``mlops_common.streams.StreamMetrics``: the
core's reports (batches, claims, aborts, errors, lag and pending) land on these metrics."""

from __future__ import annotations

from typing import Annotated

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mlops_common.prometheus import Metric, MetricSet

BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ConsumerMetrics(MetricSet):
    consumed: Annotated[
        Counter,
        Metric(
            "stream_consumer_entries_consumed",
            "Stream entries processed and acknowledged (every outcome).",
        ),
    ]
    events: Annotated[
        Counter,
        Metric(
            "stream_consumer_events",
            "Consumed entries by outcome: applied, duplicate, dead_lettered, trimmed (removed "
            "from the stream by MAXLEN before they were processed).",
            ("outcome",),
        ),
    ]
    claimed: Annotated[
        Counter,
        Metric(
            "stream_consumer_claimed_entries",
            "Entries taken over from other consumers (XAUTOCLAIM).",
        ),
    ]
    aborted: Annotated[
        Counter,
        Metric(
            "stream_consumer_aborted_batches",
            "Batches not committed because another consumer claimed an entry first.",
        ),
    ]
    errors: Annotated[
        Counter,
        Metric(
            "stream_consumer_errors",
            "Failed batches (retried), by exception type.",
            ("error",),
        ),
    ]
    lag: Annotated[
        Gauge,
        Metric(
            "stream_consumer_lag_entries",
            "Entries in the stream not yet delivered to the consumer group (XINFO GROUPS lag).",
        ),
    ]
    pending: Annotated[
        Gauge,
        Metric(
            "stream_consumer_pending_entries",
            "Entries delivered to the group but not acknowledged yet.",
        ),
    ]
    event_age: Annotated[
        Gauge,
        Metric(
            "stream_consumer_event_age_seconds",
            "Age of the newest event of the last applied batch when it was committed.",
        ),
    ]
    offline_buffer: Annotated[
        Gauge,
        Metric(
            "stream_consumer_offline_buffer_rows",
            "Applied rows waiting for the next flush to the offline store.",
        ),
    ]
    batch_seconds: Annotated[
        Histogram,
        Metric(
            "stream_consumer_batch_seconds",
            "Time to validate, apply and commit one batch.",
            (),
            BATCH_BUCKETS,
        ),
    ]

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry or CollectorRegistry())  # process_cpu_seconds_total, ...
        for outcome in ("applied", "duplicate", "dead_lettered", "trimmed"):
            self.events.labels(outcome)

    # --- mlops_common.streams.StreamMetrics ------------------------------------------------------
    def on_batch(self, entries: int, seconds: float) -> None:
        self.consumed.inc(entries)
        self.batch_seconds.observe(seconds)

    def on_claimed(self, stream: str, count: int) -> None:
        self.claimed.inc(count)

    def on_aborted(self) -> None:
        self.aborted.inc()

    def on_error(self, error: str) -> None:
        self.errors.labels(error).inc()

    def on_group_state(self, stream: str, lag: int | None, pending: int) -> None:
        if lag is not None:
            self.lag.set(lag)
        self.pending.set(pending)

    def on_up(self, up: bool) -> None:
        return None  # no such metric: errors count the failed iterations
