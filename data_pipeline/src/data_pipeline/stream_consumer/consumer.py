"""The stream consumer: driver statistics events from the Redis stream into the feature store.

It runs on the platform's consumer core (``mlops_common.streams.ConsumerCore``: the consumer
group, this consumer's own pending entries after a restart, takeover of a dead consumer's
entries, the retry bound, backoff, bounds and gauges); this module is the core's batch handler.
Delivery is at-least-once (an entry is acknowledged only in the same atomic step that records
its effect); application is idempotent, so the *effect* is exactly once across crashes and
restarts. For each batch:

1. Decode and validate each entry (``mlops_common.events.driver_stats.decode``). Malformed
   entries, events dated more than ``max_future_skew_s`` ahead (they would pin the online
   value) and entries the core refused at the retry bound (``MLOPS_STREAM_MAX_DELIVERIES``
   failed attempts) go to the dead-letter stream ``<stream>:dead`` (the core's dead-letter
   shape: reason, source stream and id, group, consumer, deliveries, time, original fields).
2. Drop duplicates: an ``event_id`` seen earlier in the batch or recorded in the applied set
   (``<stream>:<group>:applied``, a sorted set of the newest ``dedup_window`` event ids).
3. Write the new events to the online store (Feast push). This write is idempotent by itself:
   the Redis online store keeps, per driver, only a value newer than the one it holds.
4. Commit, in one Lua script (atomic in Redis): check that this consumer still owns every entry
   (else abort: another consumer took the batch over and will apply it), re-check each event id
   against the applied set (a concurrent consumer may have applied a duplicate), add the new ids
   to it, append their rows to the offline buffer (``<stream>:<group>:offline``, a stream), add
   the dead letters, count the effects (``<stream>:<group>:counters``) and ``XACK`` the batch.
   A crash before the commit leaves the entries pending: steps 1-4 run again, and 3 is
   harmless; a crash after it has nothing left to redo.

The offline store gets the buffered rows in files of many batches (``offline.OfflineFlusher``,
after every read and once more at the end): one flush at a time (a lock), whose buffer range is
recorded before the file is written and removed from the buffer in the same step as the record,
so a flush interrupted by a crash is redone over exactly the same range, to the same file name.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, Unpack

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
    format_timestamp,
)
from mlops_common.redis import connect
from mlops_common.streams import (
    ConsumerConfig,
    ConsumerCore,
    Entry,
    OwnershipLost,
    ReadResult,
    RunBounds,
    stream_ms,
    text,
)
from mlops_common.streams import ConsumerStats as CoreStats

__all__ = [
    "COMMIT_SCRIPT",
    "ROW_COLUMNS",
    "ConsumerStats",
    "OnlineSink",
    "OwnershipLost",
    "StreamConsumer",
    "core_config",
    "event_row",
    "events_frame",
]

log = logging.getLogger("data_pipeline.stream_consumer")

#: Row columns of an applied event in the offline buffer and files (before typing).
ROW_COLUMNS: tuple[str, ...] = ("event_id", "driver_id", "event_timestamp", "created", *FEATURES)

_CHUNK = 1000  # Lua unpack() stays far below its argument limit

COMMIT_SCRIPT = """
local p = cjson.decode(ARGV[1])
local stream, dead, applied, buffer, counters = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
for _, id in ipairs(p.owned) do
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
for _, letter in ipairs(p.dead) do
  redis.call('XADD', dead, 'MAXLEN', '~', p.dead_maxlen, '*', unpack(letter))
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


@dataclass
class ConsumerStats(CoreStats):
    """What this process did (the broker's counters hash holds the totals over all runs): the
    core's counts and the effects of this consumer's commits."""

    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    offline_rows_flushed: int = 0


@dataclass
class _Batch:
    """A batch after validation."""

    ids: list[str]
    #: entries still in the stream: the commit checks that this consumer still owns them
    owned: list[str] = field(default_factory=list)
    fresh: list[tuple[str, DriverStatsEvent]] = field(default_factory=list)
    dead: list[dict[str, str]] = field(default_factory=list)
    duplicates: int = 0
    trimmed: int = 0


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


def core_config(settings: StreamConsumerSettings) -> ConsumerConfig:
    """The consumer core's configuration from the consumer's settings."""
    s = settings
    return ConsumerConfig(
        streams=(s.stream,),
        group=s.group,
        consumer=s.consumer_name,
        dead_letter_stream=s.dead_letter_stream,
        dead_letter_maxlen=s.dead_letter_maxlen,
        start_id=s.start_id,
        batch_size=s.batch_size,
        block_ms=s.block_ms,
        claim_min_idle_ms=s.claim_min_idle_ms,
        claim_interval_s=s.claim_interval_s,
        max_deliveries=s.max_deliveries,
        backoff_initial_s=s.backoff_initial,
        backoff_max_s=s.backoff_max,
        broker_url=s.broker_url,
    )


class StreamConsumer:
    """Consumes the driver stats stream into an online sink and the offline buffer: the batch
    handler of a ``ConsumerCore`` (``core``), which runs the loop."""

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
        self.client = client or connect(
            settings.broker_url, read_timeout_s=settings.block_ms / 1000.0 + 5.0
        )
        self.metrics = metrics or ConsumerMetrics()
        self.now = now
        self.stats = ConsumerStats()
        self._commit = self.client.register_script(COMMIT_SCRIPT)
        self.flusher = (
            OfflineFlusher(self.client, settings, offline) if settings.offline and offline else None
        )
        self.core = ConsumerCore(
            self.client,
            core_config(settings),
            self,
            metrics=self.metrics,
            stop=stop,
            log=log,
            clock=lambda: self.now().timestamp(),
            stats=self.stats,
        )

    @property
    def stop(self) -> threading.Event:
        return self.core.stop

    # -- the group (the core's) -------------------------------------------------------------
    def ensure_group(self) -> None:
        self.core.group.ensure()

    def read(self, block_ms: int | None = None) -> list[Entry]:
        """New entries (not processed: ``process`` them, or leave them pending)."""
        return self.core.group.read_new(block_ms).entries

    def counters(self) -> dict[str, int]:
        """The effect counters over every run of the group (from the broker)."""
        raw: Any = self.client.hgetall(self.settings.counters_key)
        return {text(k): int(v) for k, v in raw.items()}

    # -- one batch (BatchHandler) -----------------------------------------------------------
    def process(self, entries: Sequence[Entry]) -> None:
        """Validate, de-duplicate, apply and commit one batch of this consumer's entries."""
        if not entries:
            return
        batch = self._validate(entries)
        new = self._unseen(batch)
        if new:
            self.online.write(events_frame([e for _, e in new]))
        result = self._commit(keys=self._keys(), args=[json.dumps(self._payload(batch, new))])
        if int(result[0]) != 1:
            raise OwnershipLost(
                f"entry {text(result[1])} was claimed by another consumer; batch of "
                f"{len(batch.ids)} left to it"
            )
        self._count(batch, applied=int(result[1]), duplicates=int(result[2]))
        if new:
            newest = max(e.event_timestamp for _, e in new)
            self.metrics.event_age.set(max(0.0, (self.now() - newest).total_seconds()))
        for letter in batch.dead:
            log.warning("dead-lettered %s: %s", letter["source_id"], letter["reason"])

    def _validate(self, entries: Sequence[Entry]) -> _Batch:
        horizon = self.now() + timedelta(seconds=self.settings.max_future_skew_s)
        batch = _Batch(ids=[entry.id for entry in entries])
        seen: set[str] = set()
        for entry in entries:
            if entry.fields is None:  # trimmed from the stream (MAXLEN) before it was processed
                batch.trimmed += 1
                continue
            batch.owned.append(entry.id)
            try:
                event = self._decode(entry, horizon)
            except MalformedEvent as exc:
                batch.dead.append(self.core.dead_letter(entry, exc.reason))
                continue
            if event.event_id in seen:
                batch.duplicates += 1
                continue
            seen.add(event.event_id)
            batch.fresh.append((entry.id, event))
        return batch

    def _decode(self, entry: Entry, horizon: datetime) -> DriverStatsEvent:
        assert entry.fields is not None
        if entry.refused is not None:
            raise MalformedEvent(entry.refused)
        event = decode(entry.fields)
        if event.event_timestamp > horizon:
            raise MalformedEvent(
                f"event_timestamp {format_timestamp(event.event_timestamp)} is more than "
                f"{self.settings.max_future_skew_s:g} s in the future"
            )
        return event

    def _unseen(self, batch: _Batch) -> list[tuple[str, DriverStatsEvent]]:
        """The batch's events not in the applied set (the others count as duplicates)."""
        if not batch.fresh:
            return []
        ids = [e.event_id for _, e in batch.fresh]
        scores: Any = self.client.zmscore(self.settings.applied_key, ids)
        new = [item for item, score in zip(batch.fresh, scores, strict=True) if score is None]
        batch.duplicates += len(batch.fresh) - len(new)
        return new

    def _keys(self) -> list[str]:
        s = self.settings
        return [s.stream, s.dead_letter_stream, s.applied_key, s.offline_buffer_key, s.counters_key]

    def _payload(
        self, batch: _Batch, new: Sequence[tuple[str, DriverStatsEvent]]
    ) -> dict[str, Any]:
        s = self.settings
        return {
            "group": s.group,
            "consumer": s.consumer_name,
            "ids": batch.ids,
            "owned": batch.owned,
            "new": [
                {"id": e.event_id, "score": stream_ms(sid), "row": event_row(e)} for sid, e in new
            ],
            "dead": [[x for item in letter.items() for x in item] for letter in batch.dead],
            "duplicates": batch.duplicates,
            "trimmed": batch.trimmed,
            "dedup_window": s.dedup_window,
            "dead_maxlen": s.dead_letter_maxlen,
            "offline": bool(self.flusher),
        }

    def _count(self, batch: _Batch, *, applied: int, duplicates: int) -> None:
        st = self.stats
        st.applied += applied
        st.duplicates += duplicates
        st.dead_lettered += len(batch.dead)
        events = self.metrics.events
        events.labels("applied").inc(applied)
        events.labels("duplicate").inc(duplicates)
        events.labels("dead_lettered").inc(len(batch.dead))
        events.labels("trimmed").inc(batch.trimmed)
        if batch.trimmed:
            log.warning(
                "%d pending entries were trimmed from the stream unprocessed", batch.trimmed
            )

    def after_read(self, read: ReadResult) -> None:
        if self.flusher:
            self.stats.offline_rows_flushed += self.flusher.flush(force=False)

    def refresh_gauges(self) -> None:
        if self.flusher:
            buffered: Any = self.client.xlen(self.settings.offline_buffer_key)
            self.metrics.offline_buffer.set(int(buffered))

    def finish(self) -> None:
        if not self.flusher:
            return
        try:
            self.stats.offline_rows_flushed += self.flusher.flush(force=True)
        except Exception as exc:
            log.warning(
                "final offline flush failed (%s: %s); the rows stay buffered",
                type(exc).__name__,
                exc,
            )

    # -- the loop (the core's) --------------------------------------------------------------
    def run(self, **bounds: Unpack[RunBounds]) -> ConsumerStats:
        """Consume until stopped (SIGTERM), or a bound is reached: ``max_entries`` consumed,
        ``duration`` seconds, or ``idle_exit_s`` seconds without a new entry."""
        self.core.run(**bounds)
        log.info("stopped: %s", self.stats.as_dict())
        return self.stats
