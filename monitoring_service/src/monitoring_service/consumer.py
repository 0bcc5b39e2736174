"""The event consumer: serving's prediction and feedback streams into the window state.

A Redis consumer group (``MONITORING_CONSUMER_GROUP``, default ``monitoring``) on both streams,
read with one ``XREADGROUP``. Delivery is at-least-once; the effect is exactly once
(the patterns of ``data_pipeline.stream_consumer``):

1. On start and after any error, first this consumer's own pending entries (a restarted
   consumer with the same name resumes where it stopped), then entries other consumer names
   have held longer than ``MONITORING_CLAIM_MIN_IDLE_MS`` (``XAUTOCLAIM``; repeated every
   ``MONITORING_CLAIM_INTERVAL_S``).
2. Decode every entry with ``mlops_common.events.serving.decode`` (the one schema). Malformed
   entries, an event of the other stream's type, and events dated more than
   ``MONITORING_MAX_FUTURE_SKEW_S`` ahead are refused with a reason.
3. ``Store.apply``: the whole batch in one SQLite transaction, every entry id recorded with its
   effect (so an entry delivered twice is applied once).
4. Only then, in one Redis ``MULTI``: the refused entries go to the dead-letter stream
   (reason, source stream and id, the original fields) and the batch is acknowledged
   (``XACK``). Either both happen or neither, so a dead letter is written exactly once.

A crash before 3 leaves the entries pending (re-read on restart); between 3 and 4 the entries
are re-read, recognised as applied, and acknowledged (dead letters are written then).

After each read the consumer closes the windows whose time span has ended (``windows``): its
**watermark** is the time of the last read that left nothing behind (fewer entries than the
batch size on every stream), i.e. every event written before it has been applied.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import redis

from mlops_common.events.serving import FEEDBACK, PREDICTION, MalformedEvent, decode
from monitoring_service.metrics import MonitoringMetrics
from monitoring_service.settings import MonitoringSettings
from monitoring_service.store import ApplyResult, Parsed, Store, epoch
from monitoring_service.windows import Window

log = logging.getLogger("monitoring_service.consumer")

HOUSEKEEPING_S = 60.0

#: (stream kind, entry id, fields or None when trimmed from the stream before it was read)
Entry = tuple[str, str, dict[Any, Any] | None]


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def fields_as_text(fields: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in fields.items()}


def redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def connect(url: str, block_ms: int) -> redis.Redis:
    timeout = block_ms / 1000.0 + 5.0
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=5.0, health_check_interval=30
    )


class EventConsumer:
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
        self.client = client or connect(settings.events_redis_url, settings.monitoring_block_ms)
        self.stop = stop or threading.Event()
        self.on_closed = on_closed
        self.now = now
        self.streams = {
            s.monitoring_prediction_stream: PREDICTION,
            s.monitoring_feedback_stream: FEEDBACK,
        }
        self.names = {kind: name for name, kind in self.streams.items()}
        self.group = s.monitoring_consumer_group
        self.consumer = s.monitoring_consumer_name
        #: every event written to the streams before this time has been applied
        self.watermark: float | None = None
        self.up: bool | None = None
        self.last_error: str | None = None
        self.applied = 0
        self.batches = 0
        self._last_claim = 0.0
        self._last_gauges = 0.0
        self._thread: threading.Thread | None = None
        self._open_versions: set[str] = set()
        self._last_housekeeping = 0.0

    # --- group ---------------------------------------------------------------------------
    def ensure_groups(self) -> None:
        for name in self.streams:
            try:
                self.client.xgroup_create(
                    name, self.group, id=self.settings.monitoring_start_id, mkstream=True
                )
                log.info("created consumer group %s on %s", self.group, name)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # --- one batch -------------------------------------------------------------------------
    def parse(self, entries: Sequence[Entry]) -> tuple[list[Parsed], int]:
        """Decode a batch; returns the parsed entries and how many were trimmed unread."""
        horizon = self.now() + self.settings.monitoring_max_future_skew_s
        parsed: list[Parsed] = []
        trimmed = 0
        for kind, entry_id, fields in entries:
            if fields is None:
                trimmed += 1
                continue
            original = fields_as_text(fields)
            try:
                event = decode(fields)
                if event.type != kind:
                    raise MalformedEvent(f"a {event.type} event in the {kind} stream")
                if epoch(event.time) > horizon:
                    raise MalformedEvent(
                        f"time {event.time.isoformat()} is more than "
                        f"{self.settings.monitoring_max_future_skew_s:g} s in the future"
                    )
            except MalformedEvent as exc:
                parsed.append(
                    Parsed(kind, entry_id, None, exc.reason, original, source=self.names[kind])
                )
                continue
            parsed.append(Parsed(kind, entry_id, event, None, original, source=self.names[kind]))
        return parsed, trimmed

    def process(self, entries: Sequence[Entry]) -> ApplyResult | None:
        """Apply, then dead-letter and acknowledge, one batch of this consumer's entries."""
        if not entries:
            return None
        started = time.perf_counter()
        parsed, trimmed = self.parse(entries)
        result = self.store.apply(parsed, now=self.now())
        dead = [p for p in parsed if p.event is None]
        dead_at = datetime.now(UTC).isoformat()
        s = self.settings
        with self.client.pipeline(transaction=True) as pipe:
            for item in dead:
                pipe.xadd(
                    s.monitoring_dead_letter_stream,
                    {
                        "reason": item.dead_reason or "malformed",
                        "source_stream": self.names[item.stream],
                        "source_id": item.entry_id,
                        "consumer": f"{self.group}/{self.consumer}",
                        "dead_at": dead_at,
                        "original": json.dumps(item.original),
                    },
                    maxlen=s.monitoring_dead_letter_maxlen,
                    approximate=True,
                )
            by_stream: dict[str, list[str]] = {}
            for kind, entry_id, _ in entries:
                by_stream.setdefault(self.names[kind], []).append(entry_id)
            for name, ids in by_stream.items():
                pipe.xack(name, self.group, *ids)
            pipe.execute()
        self._account(result, dead, trimmed)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
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

    # --- reading ---------------------------------------------------------------------------
    def _entries(self, answer: Any) -> list[Entry]:
        out: list[Entry] = []
        for name, entries in answer or []:
            kind = self.streams[_text(name)]
            out.extend((kind, _text(sid), fields or None) for sid, fields in entries)
        return out

    def read(self) -> tuple[list[Entry], bool]:
        """New entries of both streams (blocking up to ``block_ms``); True when the read left
        nothing behind."""
        s = self.settings
        answer: Any = self.client.xreadgroup(
            self.group,
            self.consumer,
            {name: ">" for name in self.streams},
            count=s.monitoring_batch_size,
            block=s.monitoring_block_ms,
        )
        entries = self._entries(answer)
        per_stream: dict[str, int] = {}
        for kind, _, _ in entries:
            per_stream[kind] = per_stream.get(kind, 0) + 1
        drained = all(n < s.monitoring_batch_size for n in per_stream.values())
        return entries, drained

    def drain_own_pending(self) -> int:
        """Process the entries delivered to this consumer name and never acknowledged."""
        total = 0
        for name in self.streams:
            cursor = "0"
            while not self.stop.is_set():
                answer: Any = self.client.xreadgroup(
                    self.group,
                    self.consumer,
                    {name: cursor},
                    count=self.settings.monitoring_batch_size,
                )
                entries = self._entries(answer)
                if not entries:
                    break
                self.process(entries)
                total += len(entries)
                cursor = entries[-1][1]
        if total:
            log.info("re-processed %d pending entries of %s", total, self.consumer)
        return total

    def claim_idle(self) -> int:
        """Take over entries other consumer names have held longer than the idle limit."""
        s = self.settings
        total = 0
        for name, kind in self.streams.items():
            cursor = "0-0"
            while not self.stop.is_set():
                answer: Any = self.client.xautoclaim(
                    name,
                    self.group,
                    self.consumer,
                    s.monitoring_claim_min_idle_ms,
                    cursor,
                    count=s.monitoring_batch_size,
                )
                cursor = _text(answer[0])
                claimed = [(kind, _text(sid), fields or None) for sid, fields in answer[1]]
                if claimed:
                    total += len(claimed)
                    log.info("claimed %d idle entries of %s", len(claimed), name)
                    self.process(claimed)
                if cursor in ("0-0", "0"):
                    break
        self._last_claim = time.monotonic()
        return total

    def update_gauges(self) -> None:
        for name, kind in self.streams.items():
            try:
                groups: Any = self.client.xinfo_groups(name)
            except redis.ResponseError:
                continue
            for group in groups:
                if _text(group["name"]) != self.group:
                    continue
                pending = int(group.get("pending") or 0)
                lag = group.get("lag")
                self.metrics.events_pending.labels(kind).set(pending)
                self.metrics.events_backlog.labels(kind).set(pending + int(lag or 0))
        open_by_version: dict[str, int] = {}
        for window in self.store.windows(limit=1000, states=("open",)):
            open_by_version[window.model_version] = window.predictions
        for version, count in open_by_version.items():
            self.metrics.window_open_predictions.labels(version).set(count)
        for version in self._open_versions - set(open_by_version):
            self.metrics.window_open_predictions.labels(version).set(0)
        self._open_versions = set(open_by_version)
        self._last_gauges = time.monotonic()

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
            return int(_text(oldest).split("-", 1)[0]) if oldest else None
        for group in groups:
            if _text(group["name"]) == self.group:
                last = _text(group.get("last-delivered-id") or "0-0")
                return int(last.split("-", 1)[0])
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

    # --- the loop --------------------------------------------------------------------------
    def run(self, *, max_entries: int | None = None, idle_exit_s: float | None = None) -> None:
        """Consume until ``stop`` is set (or, for tests and tools, ``max_entries`` applied or
        ``idle_exit_s`` seconds without an entry)."""
        s = self.settings
        recovering = True
        wait = 0.2
        last_entry = time.monotonic()
        log.info(
            "consuming %s and %s on %s as %s/%s",
            s.monitoring_prediction_stream,
            s.monitoring_feedback_stream,
            redact(s.events_redis_url),
            self.group,
            self.consumer,
        )
        while not self.stop.is_set():
            if max_entries is not None and self.applied >= max_entries:
                break
            if idle_exit_s is not None and time.monotonic() - last_entry >= idle_exit_s:
                break
            try:
                if recovering:
                    self.ensure_groups()
                    if self.drain_own_pending() or self.claim_idle():
                        last_entry = time.monotonic()
                    recovering = False
                if time.monotonic() - self._last_claim >= s.monitoring_claim_interval_s:
                    self.claim_idle()
                began = self.now()
                entries, drained = self.read()
                if entries:
                    self.process(entries)
                    last_entry = time.monotonic()
                if drained:
                    self.watermark = began
                self.tick()
                if time.monotonic() - self._last_gauges >= 2.0:
                    self.update_gauges()
                if time.monotonic() - self._last_housekeeping >= HOUSEKEEPING_S:
                    self.housekeeping()
                self._set_up(True, None)
                wait = 0.2
            except Exception as exc:  # broker or state store: retry, never exit
                self.metrics.consumer_errors.labels(type(exc).__name__).inc()
                detail = (str(exc).strip().splitlines() or ["no detail"])[0]
                self._set_up(False, f"{type(exc).__name__}: {detail}")
                log.warning(
                    "consumer iteration failed (%s: %s); retrying pending entries in %.2f s",
                    type(exc).__name__,
                    detail,
                    wait,
                )
                recovering = True
                self.stop.wait(wait)
                wait = min(wait * 2.0, s.monitoring_backoff_max_s)
        log.info("consumer stopped after %d events in %d batches", self.applied, self.batches)

    def _set_up(self, up: bool, error: str | None) -> None:
        self.up = up
        if error:
            self.last_error = error
        self.metrics.consumer_up.set(1 if up else 0)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="event-consumer", daemon=True)
            self._thread.start()

    def join(self, timeout: float = 15.0) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def ping(self) -> str | None:
        """None when the broker answers, else why not."""
        try:
            self.client.ping()
        except redis.RedisError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None
