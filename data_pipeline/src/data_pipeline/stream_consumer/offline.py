"""Offline writes of streamed events: the buffer in the broker, flushed to parquet files.

Why not ``FeatureStore.push(..., to=PushMode.ONLINE_AND_OFFLINE)``: with a file offline store,
Feast 0.67 (``DaskOfflineStore.offline_write_batch``) reads the batch source's *single* parquet
file, concatenates the new rows and rewrites the file in place: it cannot append to a
partitioned directory, rewrites the whole history on every push, a crash mid-write corrupts the
file, and a retried push duplicates its rows. So the consumer writes the offline rows itself,
idempotently:

- the commit of a batch (``consumer.COMMIT_SCRIPT``) appends each newly applied event's row to
  the offline buffer, a Redis stream ``<stream>:<group>:offline``, in the same atomic step that
  acknowledges the entries;
- ``OfflineFlusher.flush`` (one flusher at a time, under a lock) takes the buffer's oldest rows,
  records their range ``first last`` in ``<stream>:<group>:offline:intent``, writes them through
  the ``OfflineSink`` under a name derived from that range, then removes the range from the
  buffer and the intent in one ``MULTI``. After a crash the recorded range is flushed again to
  the same name: the file is replaced by an identical one, never duplicated.

``ParquetOfflineSink`` writes ``<root>/date=YYYY-MM-DD/stream-<first>_<last>.parquet`` (atomic
rename), one file per flush and event date.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import redis

from data_pipeline.stream_consumer.settings import StreamConsumerSettings
from mlops_common.events.driver_stats import FEATURES

log = logging.getLogger("data_pipeline.stream_consumer.offline")

_INT_COLUMNS = ("driver_id", "avg_daily_trips")
_TIME_COLUMNS = ("event_timestamp", "created")

RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def rows_frame(columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """A typed frame of event rows: event_id (str), driver_id (int64), event_timestamp and
    created (UTC), the five features (float64, avg_daily_trips int64)."""
    frame = pd.DataFrame(dict(columns))
    frame["event_id"] = frame["event_id"].astype(str)
    for column in _TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601").astype(
            "datetime64[ns, UTC]"
        )
    for column in FEATURES:
        frame[column] = pd.to_numeric(frame[column]).astype(
            "int64" if column in _INT_COLUMNS else "float64"
        )
    frame["driver_id"] = pd.to_numeric(frame["driver_id"]).astype("int64")
    return frame[["event_id", "driver_id", *_TIME_COLUMNS, *FEATURES]]


class OfflineSink(Protocol):
    """Writes one flush of rows; writing the same name again must replace, not add."""

    def write(self, frame: pd.DataFrame, name: str) -> None: ...


class ParquetOfflineSink:
    """Parquet files under ``root``, partitioned by event date, one per flush and date.

    ``dtypes``: the columns the files get, in order, with their pandas dtypes (default: every
    row column but ``event_id``, as ``rows_frame`` types them: the feature view's source columns).
    """

    def __init__(self, root: Path, dtypes: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.dtypes = (
            dict(dtypes)
            if dtypes is not None
            else {
                "driver_id": "int64",
                **dict.fromkeys(_TIME_COLUMNS, "datetime64[ns, UTC]"),
                **{f: "int64" if f in _INT_COLUMNS else "float64" for f in FEATURES},
            }
        )

    def path(self, date: str, name: str) -> Path:
        return self.root / f"date={date}" / f"stream-{name}.parquet"

    def write(self, frame: pd.DataFrame, name: str) -> None:
        dates = frame["event_timestamp"].dt.strftime("%Y-%m-%d")
        for date, part in frame.groupby(dates, sort=True):
            target = self.path(str(date), name)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            try:
                columns = list(self.dtypes)
                part[columns].astype(self.dtypes).to_parquet(tmp, index=False)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _after(stream_id: str) -> str:
    """The smallest stream id greater than ``stream_id``."""
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


class OfflineFlusher:
    """Moves rows from the offline buffer to the offline sink, exactly once (module docstring)."""

    def __init__(
        self, client: redis.Redis, settings: StreamConsumerSettings, sink: OfflineSink
    ) -> None:
        self.client = client
        self.settings = settings
        self.sink = sink
        self._release = client.register_script(RELEASE_LOCK)
        self._token = f"{settings.consumer_name}:{uuid.uuid4().hex}"

    def _due(self) -> bool:
        s = self.settings
        length_: Any = self.client.xlen(s.offline_buffer_key)
        length = int(length_)
        if length == 0:
            return False
        if length >= s.offline_flush_rows:
            return True
        first: Any = self.client.xrange(s.offline_buffer_key, count=1)
        if not first:
            return False
        server_time: Any = self.client.time()
        seconds, micros = server_time
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        oldest_ms = int(_text(first[0][0]).split("-", 1)[0])
        return now_ms - oldest_ms >= s.offline_flush_interval_s * 1000

    def flush(self, *, force: bool = False) -> int:
        """Flush one range when due (or ``force``, or an interrupted flush is recorded);
        returns the number of rows written."""
        s = self.settings
        intent: Any = self.client.get(s.offline_intent_key)
        if intent is None and not force and not self._due():
            return 0
        if not self.client.set(s.offline_lock_key, self._token, nx=True, px=300_000):
            return 0  # another consumer is flushing
        try:
            intent = self.client.get(s.offline_intent_key)
            if intent is not None:
                first, last = _text(intent).split()
                entries: Any = self.client.xrange(s.offline_buffer_key, first, last)
                log.info("redoing the interrupted offline flush %s..%s", first, last)
            else:
                entries = self.client.xrange(
                    s.offline_buffer_key, count=max(s.offline_flush_rows, 1)
                )
                if not entries:
                    return 0
                first, last = _text(entries[0][0]), _text(entries[-1][0])
                self.client.set(s.offline_intent_key, f"{first} {last}")
            if entries:
                rows = [{_text(k): _text(v) for k, v in fields.items()} for _, fields in entries]
                frame = rows_frame({c: [r[c] for r in rows] for c in rows[0]})
                self.sink.write(frame, f"{first}_{last}")
            with self.client.pipeline(transaction=True) as pipe:
                pipe.xtrim(s.offline_buffer_key, minid=_after(last), approximate=False)
                pipe.delete(s.offline_intent_key)
                pipe.execute()
            log.info("flushed %d rows to the offline store (%s..%s)", len(entries), first, last)
            return len(entries)
        finally:
            self._release(keys=[s.offline_lock_key], args=[self._token])
