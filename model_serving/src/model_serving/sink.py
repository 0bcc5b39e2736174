"""The event sink: prediction and feedback events to Redis streams, off the request path.

A request builds its event (``mlops_common.events.serving``: validated against the schema),
appends it to the write-ahead log (``EventLog``: one line, flushed to the OS, no fsync) and to
an in-memory buffer, and is answered; no network I/O. A background thread writes the buffer in
pipelined batches (``XADD … MAXLEN ~ n``). An event of an answered request is therefore never
lost to a kill -9 of serving: the next start replays the log. Without a log (``wal=None``) a
request only appends a closure to the buffer and the thread builds the event.

Each event is written exactly once, also when a batch is retried after a write whose reply was
lost (a hung Redis that executes it later, a timeout after the commands left, one refused write
in a pipelined batch) or replayed from the log: every event gets a token when it is encoded,
and a Lua script appends it only when the token is new (``<stream>:sent:<token>``, kept
``TOKEN_TTL_S``).

When Redis is slow or down the thread backs off and keeps the unsent events; the buffer holds
at most ``SERVING_EVENTS_BUFFER`` events, and an event that finds it full is dropped and counted
(``serving_events_dropped_total{reason="buffer_full"}``). Predictions never wait for Redis.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import KW_ONLY, InitVar, dataclass
from pathlib import Path
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from mlops_common.events.serving import Event, encode
from mlops_common.threads import Worker
from model_serving.metrics import ServingMetrics

log = logging.getLogger("model_serving.sink")

EventBuilder = Callable[[], Event]
#: seconds a written event's token is kept (a retry later than this could write it twice)
TOKEN_TTL_S = 3600
#: XADD unless the event's token was seen: KEYS stream, token key; ARGV maxlen, ttl, fields.
#: The shebang makes Redis refuse the whole script up front when it is out of memory (no
#: token without its entry, no entry without its token).
APPEND_ONCE = """#!lua
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
end
return false
"""


@dataclass(frozen=True, slots=True)
class Encoded:
    """An event ready to write, with its idempotency token (kept across retries)."""

    token: str
    fields: dict[str, str]


class EventLog:
    """The write-ahead log of events not yet confirmed in Redis: one JSON line per event
    (type, token, fields), written and flushed to the OS before the request is answered (it
    survives a kill -9 of serving, not a crash of the machine), replayed at the next start
    (the tokens make the replay exactly-once), emptied whenever everything is written."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self.path = path
        self._file = os.fdopen(fd, "a+", encoding="utf-8")

    def append(self, kind: str, event: Encoded) -> None:
        self._file.write(json.dumps([kind, event.token, event.fields]) + "\n")
        self._file.flush()

    def replay(self) -> list[tuple[str, Encoded]]:
        """The logged events (a line cut short by a kill is skipped)."""
        self._file.seek(0)
        found: list[tuple[str, Encoded]] = []
        for line in self._file:
            try:
                kind, token, fields = json.loads(line)
                found.append((str(kind), Encoded(str(token), dict(fields))))
            except (ValueError, TypeError):
                log.warning("event log %s: skipping a partial line", self.path)
        return found

    def clear(self) -> None:
        self._file.seek(0)
        self._file.truncate()

    def close(self) -> None:
        self._file.close()


class EventSubmitter(Protocol):
    """What the request path needs of a sink: hand it an event builder, never wait."""

    def submit(self, kind: str, build: EventBuilder) -> bool:
        """Queue an event; False when it is dropped."""
        ...


@dataclass(eq=False)
class EventSink:
    url: str
    streams: dict[str, str]
    _: KW_ONLY
    bound: int
    maxlen: int
    metrics: ServingMetrics
    batch: int = 500
    #: the write-ahead log (None: events wait in memory only; a kill -9 loses them)
    wal: Path | None = None
    #: the Redis client's connect and read timeout, seconds
    timeout: InitVar[float] = 1.0

    def __post_init__(self, timeout: float) -> None:
        self._lock = threading.Lock()
        self._log = EventLog(self.wal) if self.wal is not None and self.url else None
        # (type, a builder, or an event already encoded by a failed write)
        self._buffer: deque[tuple[str, EventBuilder | Encoded]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker = Worker(self._run, "event-sink")
        self._client = (
            redis.Redis.from_url(
                self.url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
            )
            if self.url
            else None
        )
        self._append = self._client.register_script(APPEND_ONCE) if self._client else None
        self.up: bool | None = None
        self.last_error: str | None = None
        self.written = 0

    @property
    def enabled(self) -> bool:
        return self._client is not None

    def describe(self) -> dict[str, object]:
        return {
            "enabled": self.enabled,
            "up": self.up,
            "buffered": len(self._buffer),
            "bound": self.bound,
            "last_error": self.last_error,
            "streams": dict(self.streams),
        }

    # --- the request path ----------------------------------------------------------------
    def submit(self, kind: str, build: EventBuilder) -> bool:
        """Queue an event; False (and counted) when it is dropped."""
        if self._client is None:
            self.metrics.events_dropped.labels(kind, "no_sink").inc()
            return False
        if len(self._buffer) >= self.bound:
            self.metrics.events_dropped.labels(kind, "buffer_full").inc()
            return False
        if self._log is None:
            self._buffer.append((kind, build))
        else:
            event = self._encode(kind, build)
            if event is None:
                return False
            with self._lock:
                self._log.append(kind, event)
                self._buffer.append((kind, event))
        if len(self._buffer) >= self.batch:
            self._wake.set()
        return True

    # --- the writer thread ---------------------------------------------------------------
    def start(self) -> None:
        if self._client is None:
            return
        if self._log is not None:
            replayed = self._log.replay()
            if replayed:
                log.info("event log: %d events of an earlier process to write", len(replayed))
            self._buffer.extendleft(reversed(replayed))
        self._worker.start()

    def stop(self, flush_timeout: float = 3.0) -> None:
        """Stop the writer after trying to flush what is buffered for ``flush_timeout``."""
        if not self._worker.started:
            return
        deadline = time.monotonic() + flush_timeout
        while self._buffer and self.up is not False and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.02)
        self._stop.set()
        self._wake.set()
        self._worker.join(flush_timeout + 2.0)
        if self._client is not None:
            self._client.close()
        if self._log is not None:
            self._log.close()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the buffer is empty (tests, shutdown); True when it emptied."""
        deadline = time.monotonic() + timeout
        while self._buffer and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.01)
        return not self._buffer

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            if backoff:
                self._stop.wait(backoff)
            else:
                self._wake.wait(0.05)
            self._wake.clear()
            while self._buffer and not self._stop.is_set():
                if not self._write_batch():
                    backoff = min(max(backoff * 2, 0.2), 5.0)
                    break
                backoff = 0.0
            self.metrics.events_buffered.set(len(self._buffer))

    def _encode(self, kind: str, build: EventBuilder) -> Encoded | None:
        try:
            return Encoded(uuid.uuid4().hex, encode(build()))
        except Exception as exc:  # a bug, not an outage: never retried
            self.metrics.events_dropped.labels(kind, "invalid").inc()
            log.error("dropping a %s event that does not fit the schema: %s", kind, exc)
            return None

    def _write_batch(self) -> bool:
        assert self._client is not None and self._append is not None
        taken: list[tuple[str, EventBuilder | Encoded]] = []
        while self._buffer and len(taken) < self.batch:
            taken.append(self._buffer.popleft())
        entries: list[tuple[str, Encoded]] = []
        for kind, item in taken:
            if isinstance(item, Encoded):
                entries.append((kind, item))
                continue
            event = self._encode(kind, item)
            if event is not None:
                entries.append((kind, event))
        if not entries:
            return True
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for kind, event in entries:
                    stream = self.streams[kind]
                    args: list[str | int] = [self.maxlen, TOKEN_TTL_S]
                    for name, value in event.fields.items():
                        args += [name, value]
                    self._append(
                        keys=[stream, f"{stream}:sent:{event.token}"], args=args, client=pipe
                    )
                pipe.execute()
        except redis.RedisError as exc:
            # keep them (already built: cheap to retry), oldest first, within the bound
            room = max(0, self.bound - len(self._buffer))
            keep, lost = entries[:room], entries[room:]
            for kind, event in reversed(keep):
                self._buffer.appendleft((kind, event))
            for kind, _ in lost:
                self.metrics.events_dropped.labels(kind, "buffer_full").inc()
            if self.up is not False:
                log.warning("event sink down (%s): buffering up to %d events", exc, self.bound)
            self.up = False
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.metrics.sink_up.set(0)
            return False
        if self._log is not None:
            with self._lock:
                if not self._buffer:  # everything submitted is in Redis
                    self._log.clear()
        if self.up is False:
            log.info("event sink back up")
        self.up = True
        self.metrics.sink_up.set(1)
        for kind, _ in entries:
            self.metrics.events_written.labels(kind).inc()
        self.written += len(entries)
        return True
