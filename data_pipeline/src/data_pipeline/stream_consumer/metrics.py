"""Prometheus metrics of the stream consumer (one registry per consumer, served on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, ...
        r = self.registry
        self.consumed = Counter(
            "stream_consumer_entries_consumed",
            "Stream entries processed and acknowledged (every outcome).",
            registry=r,
        )
        self.events = Counter(
            "stream_consumer_events",
            "Consumed entries by outcome: applied, duplicate, dead_lettered, trimmed (removed "
            "from the stream by MAXLEN before they were processed).",
            ["outcome"],
            registry=r,
        )
        for outcome in ("applied", "duplicate", "dead_lettered", "trimmed"):
            self.events.labels(outcome)
        self.claimed = Counter(
            "stream_consumer_claimed_entries",
            "Entries taken over from other consumers (XAUTOCLAIM).",
            registry=r,
        )
        self.aborted = Counter(
            "stream_consumer_aborted_batches",
            "Batches not committed because another consumer claimed an entry first.",
            registry=r,
        )
        self.errors = Counter(
            "stream_consumer_errors",
            "Failed batches (retried), by exception type.",
            ["error"],
            registry=r,
        )
        self.lag = Gauge(
            "stream_consumer_lag_entries",
            "Entries in the stream not yet delivered to the consumer group (XINFO GROUPS lag).",
            registry=r,
        )
        self.pending = Gauge(
            "stream_consumer_pending_entries",
            "Entries delivered to the group but not acknowledged yet.",
            registry=r,
        )
        self.event_age = Gauge(
            "stream_consumer_event_age_seconds",
            "Age of the newest event of the last applied batch when it was committed.",
            registry=r,
        )
        self.offline_buffer = Gauge(
            "stream_consumer_offline_buffer_rows",
            "Applied rows waiting for the next flush to the offline store.",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "stream_consumer_batch_seconds",
            "Time to validate, apply and commit one batch.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
