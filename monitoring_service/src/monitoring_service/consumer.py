"""The event consumer: serving's prediction and feedback streams into the window state.

It runs on the platform's consumer core (``mlops_common.streams.ConsumerCore``): a Redis
consumer group (``MONITORING_CONSUMER_GROUP``, default ``monitoring``) on both streams, read with
one ``XREADGROUP``; on start and after any error this consumer's own pending entries first (a
restarted consumer with the same name resumes where it stopped), then entries other consumer
names have held longer than ``MONITORING_CLAIM_MIN_IDLE_MS`` (``XAUTOCLAIM``; repeated every
``MONITORING_CLAIM_INTERVAL_S``); the retry bound (an entry that fails processing
``MONITORING_MAX_DELIVERIES`` times is dead-lettered with the error, not retried forever);
backoff, gauges. This module is the core's batch handler. Delivery is at-least-once; the effect
is exactly once:

1. Decode every entry with ``mlops_common.events.serving.decode`` (the one schema). Malformed
   entries, an event of the other stream's type, events dated more than
   ``MONITORING_MAX_FUTURE_SKEW_S`` ahead, and entries the core refused at the retry bound are
   refused with a reason.
2. ``Store.apply``: the whole batch in one SQLite transaction, every entry id recorded with its
   effect (so an entry delivered twice is applied once).
3. Only then, in one Redis ``MULTI``: the refused entries go to the dead-letter stream (the
   core's dead-letter shape: reason, source stream and id, group, consumer, deliveries, time,
   the original fields) and the batch is acknowledged (``XACK``). Either both happen or
   neither, so a dead letter is written exactly once.

A crash before 2 leaves the entries pending (re-read on restart); between 2 and 3 the entries
are re-read, recognised as applied, and acknowledged (dead letters are written then).

After each read the consumer closes the windows whose time span has ended (``windows``): its
**watermark** is the time of the last read that left nothing behind (fewer entries than the
batch size on every stream), i.e. every event written before it has been applied.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis

from mlops_common.events.codec import fields_as_text
from mlops_common.events.serving import FEEDBACK, PREDICTION, MalformedEvent, decode
from mlops_common.redis import connect, redact
from mlops_common.streams import (
    TRANSIENT_ERRORS,
    ConsumerConfig,
    ConsumerCore,
    Entry,
    NullStreamMetrics,
    ReadResult,
    stream_ms,
    text,
)
from mlops_common.threads import Worker
from monitoring_service.metrics import MonitoringMetrics
from monitoring_service.settings import MonitoringSettings
from monitoring_service.store import ApplyResult, Parsed, Store, epoch
from monitoring_service.windows import Window

__all__ = ["EventConsumer", "core_config", "redact"]

log = logging.getLogger("monitoring_service.consumer")

HOUSEKEEPING_S = 60.0
BACKOFF_INITIAL_S = 0.2
#: besides the broker's: the state store could not be written (locked, disk full, I/O error)
TRANSIENT = (*TRANSIENT_ERRORS, sqlite3.OperationalError)


def core_config(settings: MonitoringSettings) -> ConsumerConfig:
    """The consumer core's configuration from the service's settings."""
    s = settings
    return ConsumerConfig(
        streams=(s.monitoring_prediction_stream, s.monitoring_feedback_stream),
        group=s.monitoring_consumer_group,
        consumer=s.monitoring_consumer_name,
        dead_letter_stream=s.monitoring_dead_letter_stream,
        dead_letter_maxlen=s.monitoring_dead_letter_maxlen,
        start_id=s.monitoring_start_id,
        batch_size=s.monitoring_batch_size,
        block_ms=s.monitoring_block_ms,
        claim_min_idle_ms=s.monitoring_claim_min_idle_ms,
        claim_interval_s=s.monitoring_claim_interval_s,
        max_deliveries=s.monitoring_max_deliveries,
        backoff_initial_s=BACKOFF_INITIAL_S,
        backoff_max_s=s.monitoring_backoff_max_s,
        broker_url=s.events_redis_url,
    )


class _CoreMetrics(NullStreamMetrics):
    """The core's reports on the service's metrics (labelled by stream kind)."""

    def __init__(self, metrics: MonitoringMetrics, kinds: Mapping[str, str]) -> None:
        self.metrics = metrics
        self.kinds = kinds

    def on_batch(self, entries: int, seconds: float) -> None:
        self.metrics.batch_seconds.observe(seconds)

    def on_error(self, error: str) -> None:
        self.metrics.consumer_errors.labels(error).inc()

    def on_group_state(self, stream: str, lag: int | None, pending: int) -> None:
        kind = self.kinds[stream]
        self.metrics.events_pending.labels(kind).set(pending)
        self.metrics.events_backlog.labels(kind).set(pending + (lag or 0))

    def on_up(self, up: bool) -> None:
        self.metrics.consumer_up.set(1 if up else 0)


class EventConsumer:
    """The batch handler of a ``ConsumerCore`` (``core``), which runs the loop."""

    def __init__(
        self,
        settings: MonitoringSettings,
        store: Store,
        metrics: MonitoringMetrics,
        *,
        client: redis.Redis | None = None,
        stop: threading.Event | None = None,
        on_closed: Callable[[list[Window]], None] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        s = self.settings = settings
        self.store = store
        self.metrics = metrics
        self.client = client or connect(
            s.events_redis_url, read_timeout_s=s.monitoring_block_ms / 1000.0 + 5.0
        )
        self.on_closed = on_closed
        self.now = now
        #: stream name -> kind of event
        self.streams = {
            s.monitoring_prediction_stream: PREDICTION,
            s.monitoring_feedback_stream: FEEDBACK,
        }
        self.group = s.monitoring_consumer_group
        self.consumer = s.monitoring_consumer_name
        #: every event written to the streams before this time has been applied
        self.watermark: float | None = None
        self.applied = 0
        self.batches = 0
        self._worker = Worker(self.run, "event-consumer")
        self._open_versions: set[str] = set()
        self._last_housekeeping = 0.0
        self.core = ConsumerCore(
            self.client,
            core_config(s),
            self,
            metrics=_CoreMetrics(metrics, self.streams),
            stop=stop,
            log=log,
            clock=now,
            transient=TRANSIENT,
        )

    @property
    def stop(self) -> threading.Event:
        return self.core.stop

    @property
    def up(self) -> bool | None:
        """None before the first loop iteration, then whether the last one succeeded."""
        return self.core.up

    @property
    def last_error(self) -> str | None:
        return self.core.last_error

    # --- the group (the core's) ----------------------------------------------------------------
    def ensure_groups(self) -> None:
        self.core.group.ensure()

    def read(self) -> tuple[list[Entry], bool]:
        """New entries of both streams (blocking up to ``block_ms``; not processed); True when
        the read left nothing behind."""
        read = self.core.group.read_new(self.settings.monitoring_block_ms, self.now)
        return read.entries, read.drained

    # --- one batch (BatchHandler) ----------------------------------------------------------------
    def parse(self, entries: Sequence[Entry]) -> tuple[list[Parsed], int]:
        """Decode a batch; returns the parsed entries and how many were trimmed unread."""
        horizon = self.now() + self.settings.monitoring_max_future_skew_s
        parsed = [self._parse(entry, horizon) for entry in entries if entry.fields is not None]
        return parsed, len(entries) - len(parsed)

    def _parse(self, entry: Entry, horizon: float) -> Parsed:
        assert entry.fields is not None
        kind = self.streams[entry.stream]
        original = fields_as_text(entry.fields)
        try:
            if entry.refused is not None:
                raise MalformedEvent(entry.refused)
            event = decode(entry.fields)
            if event.type != kind:
                raise MalformedEvent(f"a {event.type} event in the {kind} stream")
            if epoch(event.time) > horizon:
                raise MalformedEvent(
                    f"time {event.time.isoformat()} is more than "
                    f"{self.settings.monitoring_max_future_skew_s:g} s in the future"
                )
        except MalformedEvent as exc:
            return Parsed(kind, entry.id, None, exc.reason, original, source=entry.stream)
        return Parsed(kind, entry.id, event, None, original, source=entry.stream)

    def process(self, entries: Sequence[Entry]) -> ApplyResult | None:
        """Apply, then dead-letter and acknowledge, one batch of this consumer's entries."""
        if not entries:
            return None
        parsed, trimmed = self.parse(entries)
        result = self.store.apply(parsed, now=self.now())
        dead = [p for p in parsed if p.event is None]
        by_id = {(e.stream, e.id): e for e in entries}
        letters = [
            self.core.dead_letter(by_id[(p.source, p.entry_id)], p.dead_reason or "malformed")
            for p in dead
        ]
        self.core.acknowledge(entries, letters)
        self._account(result, dead, trimmed)
        return result

    def _account(self, result: ApplyResult, dead: list[Parsed], trimmed: int) -> None:
        m = self.metrics
        for kind, count in result.applied.items():
            m.events_consumed.labels(kind).inc(count)
        for stream, count in result.dead.items():
            m.events_malformed.labels(stream).inc(count)
        for stream, count in result.duplicates.items():
            m.events_duplicate.labels(stream).inc(count)
        for version, delay in result.delays:
            m.label_delay.labels(version).observe(max(0.0, delay))
        for version, count in result.late.items():
            m.labels_late.labels(version).inc(count)
        if result.newest_event is not None:
            m.last_event.set(result.newest_event)
        self.applied += sum(result.applied.values())
        self.batches += 1
        for item in dead:
            log.warning(
                "dead-lettered %s entry %s: %s", item.stream, item.entry_id, item.dead_reason
            )
        if trimmed:
            log.warning("%d pending entries were trimmed from the streams unread", trimmed)
        self._closed(result.closed)

    def _closed(self, windows: list[Window]) -> None:
        for window in windows:
            self.metrics.windows.labels(window.model_version, window.close_reason or "?").inc()
            log.info(
                "closed window %d of %s v%s (%s): %d predictions, %d rows",
                window.window_id,
                window.model_name,
                window.model_version,
                window.close_reason,
                window.predictions,
                window.rows,
            )
        if windows and self.on_closed is not None:
            self.on_closed(windows)

    def refresh_gauges(self) -> None:
        """Predictions in each model version's open window."""
        open_by_version: dict[str, int] = {}
        for window in self.store.windows(limit=1000, states=("open",)):
            open_by_version[window.model_version] = window.predictions
        for version, count in open_by_version.items():
            self.metrics.window_open_predictions.labels(version).set(count)
        for version in self._open_versions - set(open_by_version):
            self.metrics.window_open_predictions.labels(version).set(0)
        self._open_versions = set(open_by_version)

    def after_read(self, read: ReadResult) -> None:
        """Move the watermark, close the windows it passed, forget what no longer matters."""
        if read.drained:
            self.watermark = read.began
        self.tick()
        if time.monotonic() - self._last_housekeeping >= HOUSEKEEPING_S:
            self.housekeeping()

    def finish(self) -> None:
        log.info("consumer stopped after %d events in %d batches", self.applied, self.batches)

    def horizon_ms(self, name: str) -> int | None:
        """Stream time before which every entry of ``name`` is acknowledged by the group: the
        oldest pending entry, else the last delivered one (None: the group knows nothing)."""
        try:
            pending: Any = self.client.xpending(name, self.group)
            groups: Any = self.client.xinfo_groups(name)
        except redis.ResponseError:
            return None
        if pending and pending.get("pending"):
            oldest = pending.get("min")
            return stream_ms(text(oldest)) if oldest else None
        for group in groups:
            if text(group["name"]) == self.group:
                return stream_ms(text(group.get("last-delivered-id") or "0-0"))
        return None

    def housekeeping(self) -> None:
        """Forget what can no longer matter: applied entry ids older than the oldest entry the
        group could deliver again (a minute of margin), final windows' rows past the retention;
        count labels whose prediction is unknown."""
        s = self.settings
        pruned = self.store.prune(self.now(), s.monitoring_retention_s, s.monitoring_keep_windows)
        for name in self.streams:
            horizon = self.horizon_ms(name)
            if horizon is not None and horizon > 60_000:
                pruned[f"entries:{name}"] = self.store.prune_entries(name, horizon - 60_000)
        if any(pruned.values()):
            log.info("pruned state: %s", pruned)
        self.metrics.labels_unmatched.set(self.store.unmatched_labels())
        self._last_housekeeping = time.monotonic()

    def tick(self) -> list[Window]:
        """Close the windows the watermark has passed."""
        if self.watermark is None:
            return []
        closed = self.store.close_expired(self.watermark, now=self.now())
        self._closed(closed)
        return closed

    # --- the loop (the core's) ------------------------------------------------------------------
    def run(self, *, max_entries: int | None = None, idle_exit_s: float | None = None) -> None:
        """Consume until ``stop`` is set (or, for tests and tools, ``max_entries`` consumed or
        ``idle_exit_s`` seconds without an entry)."""
        self.core.run(max_entries=max_entries, idle_exit_s=idle_exit_s)

    def start(self) -> None:
        self._worker.start()

    def join(self, timeout: float = 15.0) -> None:
        self.stop.set()
        self._worker.join(timeout)

    def ping(self) -> str | None:
        """None when the broker answers, else why not."""
        try:
            self.client.ping()
        except redis.RedisError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None
