"""The stream consumer: driver statistics events from the Redis stream into the feature store.

Delivery is at-least-once (a Redis consumer group; an entry is acknowledged only in the same
atomic step that records its effect); application is idempotent, so the *effect* is exactly once
across crashes and restarts:

1. Read a batch (``XREADGROUP``). On start, and after any error, first the consumer's own pending
   entries (a restarted consumer with the same name resumes where it died), then entries other
   consumers have held longer than ``claim_min_idle_ms`` (``XAUTOCLAIM``: a dead consumer's work
   is taken over; repeated every ``claim_interval_s``).
2. Decode and validate each entry (``mlops_common.events.driver_stats.decode``). Malformed
   entries, and events dated more than ``max_future_skew_s`` ahead (they would pin the online
   value), go to the dead-letter stream ``<stream>:dead`` with the reason and the original fields.
3. Drop duplicates: an ``event_id`` seen earlier in the batch or recorded in the applied set
   (``<stream>:<group>:applied``, a sorted set of the newest ``dedup_window`` event ids).
4. Write the new events to the online store (Feast push). This write is idempotent by itself:
   the Redis online store keeps, per driver, only a value newer than the one it holds.
5. Commit, in one Lua script (atomic in Redis): check that this consumer still owns every entry
   (else abort: another consumer took the batch over and will apply it), re-check each event id
   against the applied set (a concurrent consumer may have applied a duplicate), add the new ids
   to it, append their rows to the offline buffer (``<stream>:<group>:offline``, a stream), add
   the dead letters, count the effects (``<stream>:<group>:counters``) and ``XACK`` the batch.
   A crash before the commit leaves the entries pending: steps 2-5 run again, and 4 is
   harmless; a crash after it has nothing left to redo.

The offline store gets the buffered rows in files of many batches (``offline.OfflineFlusher``):
one flush at a time (a lock), whose buffer range is recorded before the file is written and
removed from the buffer in the same step as the record, so a flush interrupted by a crash is
redone over exactly the same range, to the same file name.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pandas as pd
import redis

from data_pipeline.stream_consumer.metrics import ConsumerMetrics
from data_pipeline.stream_consumer.offline import OfflineFlusher, OfflineSink, rows_frame
from data_pipeline.stream_consumer.settings import StreamConsumerSettings
from mlops_common.events.driver_stats import (
    FEATURES,
    DriverStatsEvent,
    MalformedEvent,
    decode,
    fields_as_text,
    format_timestamp,
)
from mlops_common.redis import connect, redact

log = logging.getLogger("data_pipeline.stream_consumer")

#: Row columns of an applied event in the offline buffer and files (before typing).
ROW_COLUMNS: tuple[str, ...] = ("event_id", "driver_id", "event_timestamp", "created", *FEATURES)

_CHUNK = 1000  # Lua unpack() stays far below its argument limit

COMMIT_SCRIPT = """
local p = cjson.decode(ARGV[1])
local stream, dead, applied, buffer, counters = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
for _, id in ipairs(p.ids) do
  local owned = redis.call('XPENDING', stream, p.group, id, id, 1, p.consumer)
  if #owned == 0 then
    return {0, id}
  end
end
local n_applied, n_dup = 0, p.duplicates
for _, e in ipairs(p.new) do
  if redis.call('ZSCORE', applied, e.id) then
    n_dup = n_dup + 1
  else
    redis.call('ZADD', applied, e.score, e.id)
    if p.offline then
      redis.call('XADD', buffer, '*', unpack(e.row))
    end
    n_applied = n_applied + 1
  end
end
for _, d in ipairs(p.dead) do
  redis.call('XADD', dead, 'MAXLEN', '~', p.dead_maxlen, '*',
    'reason', d.reason, 'source_stream', stream, 'source_id', d.source_id,
    'consumer', p.consumer, 'dead_at', p.dead_at, 'original', d.original)
end
if n_applied > 0 then
  local excess = redis.call('ZCARD', applied) - p.dedup_window
  if excess > 0 then
    redis.call('ZREMRANGEBYRANK', applied, 0, excess - 1)
  end
end
redis.call('HINCRBY', counters, 'consumed', #p.ids)
redis.call('HINCRBY', counters, 'applied', n_applied)
redis.call('HINCRBY', counters, 'duplicates', n_dup)
redis.call('HINCRBY', counters, 'dead_lettered', #p.dead)
redis.call('HINCRBY', counters, 'trimmed', p.trimmed)
local i = 1
while i <= #p.ids do
  local j = math.min(i + CHUNK - 1, #p.ids)
  redis.call('XACK', stream, p.group, unpack(p.ids, i, j))
  i = j + 1
end
return {1, n_applied, n_dup}
""".replace("CHUNK", str(_CHUNK))


class OnlineSink(Protocol):
    """Where applied events go for serving: must be idempotent and keep the newest per driver."""

    def write(self, frame: pd.DataFrame) -> None: ...


class OwnershipLost(RuntimeError):
    """Another consumer claimed an entry of the batch before it was committed."""


Entry = tuple[str, dict[bytes, bytes] | None]


@dataclass
class ConsumerStats:
    """What this process did (the broker's counters hash holds the totals over all runs)."""

    consumed: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    trimmed: int = 0
    batches: int = 0
    aborted_batches: int = 0
    claimed: int = 0
    errors: int = 0
    offline_rows_flushed: int = 0
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def stream_ms(stream_id: str) -> int:
    return int(stream_id.split("-", 1)[0])


def event_row(event: DriverStatsEvent) -> list[str]:
    """The offline buffer's fields of an applied event (flat name, value list)."""
    return [
        "event_id",
        event.event_id,
        "driver_id",
        str(event.driver_id),
        "event_timestamp",
        format_timestamp(event.event_timestamp),
        "created",
        format_timestamp(event.produced_at),
        "conv_rate",
        repr(event.conv_rate),
        "acc_rate",
        repr(event.acc_rate),
        "avg_daily_trips",
        str(event.avg_daily_trips),
        "rating",
        repr(event.rating),
        "cancel_rate",
        repr(event.cancel_rate),
    ]


def events_frame(events: Sequence[DriverStatsEvent]) -> pd.DataFrame:
    """Events as the feature view's rows: driver_id, event_timestamp, created, features."""
    return rows_frame(
        {
            "event_id": [e.event_id for e in events],
            "driver_id": [e.driver_id for e in events],
            "event_timestamp": [e.event_timestamp for e in events],
            "created": [e.produced_at for e in events],
            **{name: [getattr(e, name) for e in events] for name in FEATURES},
        }
    )


class StreamConsumer:
    """Consumes the driver stats stream into an online sink and the offline buffer."""

    def __init__(
        self,
        settings: StreamConsumerSettings,
        online: OnlineSink,
        offline: OfflineSink | None = None,
        *,
        client: redis.Redis | None = None,
        stop: threading.Event | None = None,
        metrics: ConsumerMetrics | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if settings.offline and offline is None:
            raise ValueError("offline writes are enabled but no offline sink was given")
        self.settings = settings
        self.online = online
        self.client = client or connect(settings.broker_url)
        self.stop = stop or threading.Event()
        self.metrics = metrics or ConsumerMetrics()
        self.now = now
        self.stats = ConsumerStats()
        self._commit = self.client.register_script(COMMIT_SCRIPT)
        self.flusher = (
            OfflineFlusher(self.client, settings, offline) if settings.offline and offline else None
        )
        self._last_claim = 0.0
        self._last_gauges = 0.0
        self._group_ready = False

    # -- group ------------------------------------------------------------------------------
    def ensure_group(self) -> None:
        s = self.settings
        try:
            self.client.xgroup_create(s.stream, s.group, id=s.start_id, mkstream=True)
            log.info("created consumer group %s on %s (from %s)", s.group, s.stream, s.start_id)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    # -- one batch --------------------------------------------------------------------------
    def process(self, entries: Sequence[Entry]) -> None:
        """Validate, de-duplicate, apply and commit one batch of this consumer's entries."""
        if not entries:
            return
        s = self.settings
        started = time.perf_counter()
        now = self.now()
        horizon = now + timedelta(seconds=s.max_future_skew_s)
        ids = [sid for sid, _ in entries]
        trimmed = 0
        dead: list[dict[str, str]] = []
        fresh: list[tuple[str, DriverStatsEvent]] = []
        seen: set[str] = set()
        duplicates = 0
        for sid, fields in entries:
            if fields is None:  # trimmed from the stream (MAXLEN) before it was processed
                trimmed += 1
                continue
            try:
                event = decode(fields)
                if event.event_timestamp > horizon:
                    raise MalformedEvent(
                        f"event_timestamp {format_timestamp(event.event_timestamp)} is more than "
                        f"{s.max_future_skew_s:g} s in the future",
                        fields_as_text(fields),
                    )
            except MalformedEvent as exc:
                dead.append(
                    {"source_id": sid, "reason": exc.reason, "original": json.dumps(exc.fields)}
                )
                continue
            if event.event_id in seen:
                duplicates += 1
                continue
            seen.add(event.event_id)
            fresh.append((sid, event))
        new = fresh
        if fresh:
            scores: Any = self.client.zmscore(s.applied_key, [e.event_id for _, e in fresh])
            new = [item for item, score in zip(fresh, scores, strict=True) if score is None]
            duplicates += len(fresh) - len(new)
        if new:
            self.online.write(events_frame([e for _, e in new]))
        payload = {
            "group": s.group,
            "consumer": s.consumer_name,
            "ids": ids,
            "new": [
                {"id": e.event_id, "score": stream_ms(sid), "row": event_row(e)} for sid, e in new
            ],
            "dead": dead,
            "duplicates": duplicates,
            "trimmed": trimmed,
            "dedup_window": s.dedup_window,
            "dead_maxlen": s.dead_letter_maxlen,
            "offline": bool(self.flusher),
            "dead_at": format_timestamp(now),
        }
        keys = [s.stream, s.dead_letter_stream, s.applied_key, s.offline_buffer_key, s.counters_key]
        result = self._commit(keys=keys, args=[json.dumps(payload)])
        if int(result[0]) != 1:
            self.stats.aborted_batches += 1
            self.metrics.aborted.inc()
            raise OwnershipLost(
                f"entry {_text(result[1])} was claimed by another consumer; batch of "
                f"{len(ids)} left to it"
            )
        applied, dups = int(result[1]), int(result[2])
        self._count(len(ids), applied, dups, len(dead), trimmed)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        if new:
            newest = max(e.event_timestamp for _, e in new)
            self.metrics.event_age.set(max(0.0, (self.now() - newest).total_seconds()))
        for d in dead:
            log.warning("dead-lettered %s: %s", d["source_id"], d["reason"])

    def _count(self, consumed: int, applied: int, dups: int, dead: int, trimmed: int) -> None:
        st = self.stats
        st.consumed += consumed
        st.applied += applied
        st.duplicates += dups
        st.dead_lettered += dead
        st.trimmed += trimmed
        st.batches += 1
        m = self.metrics
        m.consumed.inc(consumed)
        m.events.labels("applied").inc(applied)
        m.events.labels("duplicate").inc(dups)
        m.events.labels("dead_lettered").inc(dead)
        m.events.labels("trimmed").inc(trimmed)
        if trimmed:
            log.warning("%d pending entries were trimmed from the stream unprocessed", trimmed)

    # -- reading ----------------------------------------------------------------------------
    def _read(self, start: str, block: int | None) -> list[Entry]:
        s = self.settings
        answer: Any = self.client.xreadgroup(
            s.group, s.consumer_name, {s.stream: start}, count=s.batch_size, block=block
        )
        if not answer:
            return []
        _, entries = answer[0]
        return [(_text(sid), fields or None) for sid, fields in entries]

    def drain_own_pending(self) -> int:
        """Process the entries delivered to this consumer name but never acknowledged."""
        cursor = "0"
        total = 0
        while not self.stop.is_set():
            entries = self._read(cursor, None)
            if not entries:
                break
            self._process_or_skip(entries)
            total += len(entries)
            cursor = entries[-1][0]
        if total:
            log.info("re-processed %d pending entries of %s", total, self.settings.consumer_name)
        return total

    def claim_idle(self) -> int:
        """Take over entries other consumers have held longer than ``claim_min_idle_ms``."""
        s = self.settings
        cursor = "0-0"
        total = 0
        while not self.stop.is_set():
            answer: Any = self.client.xautoclaim(
                s.stream,
                s.group,
                s.consumer_name,
                s.claim_min_idle_ms,
                cursor,
                count=s.batch_size,
            )
            cursor = _text(answer[0])
            claimed = [(_text(sid), fields or None) for sid, fields in answer[1]]
            deleted = len(answer[2]) if len(answer) > 2 else 0
            if deleted:  # XAUTOCLAIM drops entries trimmed from the stream from the PEL itself
                self.client.hincrby(s.counters_key, "trimmed", deleted)
                self.stats.trimmed += deleted
                self.metrics.events.labels("trimmed").inc(deleted)
                log.warning("%d claimed entries had been trimmed from the stream", deleted)
            if claimed:
                total += len(claimed)
                self.stats.claimed += len(claimed)
                self.metrics.claimed.inc(len(claimed))
                log.info("claimed %d idle entries from other consumers", len(claimed))
                self._process_or_skip(claimed)
            if cursor in ("0-0", "0"):
                break
        self._last_claim = time.monotonic()
        return total

    def _process_or_skip(self, entries: Sequence[Entry]) -> None:
        try:
            self.process(entries)
        except OwnershipLost as exc:
            log.warning("%s", exc)

    def update_gauges(self) -> None:
        s = self.settings
        groups: Any = self.client.xinfo_groups(s.stream)
        for group in groups:
            if _text(group["name"]) == s.group:
                lag = group.get("lag")
                if lag is not None:
                    self.metrics.lag.set(int(lag))
                self.metrics.pending.set(int(group.get("pending", 0)))
        if self.flusher:
            buffered: Any = self.client.xlen(s.offline_buffer_key)
            self.metrics.offline_buffer.set(int(buffered))
        self._last_gauges = time.monotonic()

    def counters(self) -> dict[str, int]:
        """The effect counters over every run of the group (from the broker)."""
        raw: Any = self.client.hgetall(self.settings.counters_key)
        return {_text(k): int(v) for k, v in raw.items()}

    # -- the loop ---------------------------------------------------------------------------
    def run(
        self,
        *,
        max_entries: int | None = None,
        duration: float | None = None,
        idle_exit_s: float | None = None,
    ) -> ConsumerStats:
        """Consume until stopped (SIGTERM), or a bound is reached: ``max_entries`` consumed,
        ``duration`` seconds, or ``idle_exit_s`` seconds without a new entry."""
        s = self.settings
        started = time.monotonic()
        last_entry = started
        recovering = True
        wait = s.backoff_initial
        log.info(
            "consuming %s on %s as %s/%s (batch %d)",
            s.stream,
            redact(s.broker_url),
            s.group,
            s.consumer_name,
            s.batch_size,
        )
        while not self.stop.is_set():
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                break
            if max_entries is not None and self.stats.consumed >= max_entries:
                break
            if idle_exit_s is not None and now - last_entry >= idle_exit_s:
                break
            try:
                if recovering:
                    self.ensure_group()
                    if self.flusher:
                        self.stats.offline_rows_flushed += self.flusher.flush(force=False)
                    if self.drain_own_pending() or self.claim_idle():
                        last_entry = time.monotonic()
                    recovering = False
                    wait = s.backoff_initial
                if now - self._last_claim >= s.claim_interval_s and self.claim_idle():
                    last_entry = time.monotonic()
                entries = self._read(">", s.block_ms)
                if entries:
                    self.process(entries)
                    last_entry = time.monotonic()
                if self.flusher:
                    self.stats.offline_rows_flushed += self.flusher.flush(force=False)
                if time.monotonic() - self._last_gauges >= 2.0:
                    self.update_gauges()
                wait = s.backoff_initial
            except OwnershipLost as exc:
                log.warning("%s", exc)
            except Exception as exc:  # broker, online or offline store: retry, never exit
                self.stats.errors += 1
                self.metrics.errors.labels(type(exc).__name__).inc()
                if isinstance(exc, redis.ResponseError) and "NOGROUP" in str(exc):
                    log.warning("consumer group %s is gone (broker restart?): recreating", s.group)
                pause = wait
                log.warning(
                    "batch failed (%s: %s); retrying pending entries in %.2f s",
                    type(exc).__name__,
                    (str(exc).strip().splitlines() or ["no detail"])[0],
                    pause,
                )
                wait = min(wait * 2.0, s.backoff_max)
                recovering = True
                self.stop.wait(pause)
        if self.flusher:
            try:
                self.stats.offline_rows_flushed += self.flusher.flush(force=True)
            except Exception as exc:
                log.warning(
                    "final offline flush failed (%s: %s); the rows stay buffered",
                    type(exc).__name__,
                    exc,
                )
        self.stats.elapsed_s = round(time.monotonic() - started, 3)
        log.info("stopped: %s", self.stats.as_dict())
        return self.stats
