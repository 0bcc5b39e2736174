"""The broker side of one consumer: a consumer group on one or several Redis streams.

Every command the consumer core sends lives here: group creation, reads of new entries (one
``XREADGROUP`` over all streams), pages of this consumer's own pending entries (with their
delivery counts), takeover of idle entries (``XAUTOCLAIM``), the group's lag and pending count,
and the acknowledgement of a batch together with its dead letters (one ``MULTI``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from mlops_common.streams.entries import Entry, ReadResult, by_stream, text


@dataclass(frozen=True, slots=True)
class GroupState:
    """``XINFO GROUPS`` of the group on one stream."""

    #: entries not yet delivered to the group (None: the broker cannot tell, e.g. after XDEL)
    lag: int | None
    #: entries delivered and not acknowledged
    pending: int


def _count(pending: Mapping[str, Any]) -> int:
    """The delivery count of an ``XPENDING`` row."""
    return int(pending["times_delivered"])


class StreamGroup:
    """Consumer ``consumer`` of group ``group`` on ``streams``."""

    def __init__(
        self,
        client: redis.Redis,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        start_id: str = "0",
        batch_size: int = 500,
        log: logging.Logger | None = None,
    ) -> None:
        if not streams:
            raise ValueError("a consumer group needs at least one stream")
        self.client = client
        self.streams = tuple(streams)
        self.group = group
        self.consumer = consumer
        self.start_id = start_id
        self.batch_size = batch_size
        self.log = log or logging.getLogger("mlops_common.streams")

    def ensure(self) -> None:
        """Create the group on every stream (and the stream) unless it exists: on start, and
        after a broker restart that lost them (``NOGROUP``)."""
        for stream in self.streams:
            try:
                self.client.xgroup_create(stream, self.group, id=self.start_id, mkstream=True)
                self.log.info(
                    "created consumer group %s on %s (from %s)", self.group, stream, self.start_id
                )
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def read_new(self, block_ms: int | None, clock: Callable[[], float] = time.time) -> ReadResult:
        """Entries never delivered to the group, from every stream in one ``XREADGROUP``
        (blocking up to ``block_ms``; None: not at all)."""
        began = clock()
        answer: Any = self.client.xreadgroup(
            self.group,
            self.consumer,
            dict.fromkeys(self.streams, ">"),
            count=self.batch_size,
            block=block_ms,
        )
        entries: list[Entry] = []
        drained = True
        for name, items in answer or []:
            stream = text(name)
            # the hot path: ``_make`` builds the named tuple at the cost of a plain one
            entries.extend(
                Entry._make((stream, text(sid), fields or None, 1, None)) for sid, fields in items
            )
            drained = drained and len(items) < self.batch_size
        return ReadResult(entries, began, drained)

    def own_pending(self, stream: str, after: str | None) -> dict[str, int]:
        """The next page of this consumer's pending entries of ``stream`` (ids after
        ``after``): id -> delivery count (``XPENDING``)."""
        low = "-" if after is None else f"({after}"
        page: Any = self.client.xpending_range(
            stream, self.group, low, "+", self.batch_size, consumername=self.consumer
        )
        return {text(p["message_id"]): _count(p) for p in page}

    def fetch(self, stream: str, pending: Mapping[str, int]) -> list[Entry]:
        """Pending entries of this consumer read again *without* counting a delivery
        (``XRANGE``), kept this consumer's (``XCLAIM JUSTID`` resets their idle time, not their
        count): for a retry that is not the entries' fault."""
        if not pending:
            return []
        ids = list(pending)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.xclaim(stream, self.group, self.consumer, 0, list[Any](ids), justid=True)
            for entry_id in ids:
                pipe.xrange(stream, entry_id, entry_id, count=1)
            _, *found = pipe.execute()
        return [
            Entry(stream, entry_id, (rows[0][1] or None) if rows else None, pending[entry_id])
            for entry_id, rows in zip(ids, found, strict=True)
        ]

    def redeliver(self, stream: str, entry_id: str) -> Entry:
        """One pending entry delivered to this consumer again, counted (``XCLAIM``: its delivery
        count goes up by one) with its new count, in one ``MULTI``. An entry trimmed from the
        stream meanwhile comes back trimmed (and the broker drops it from the pending list)."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.xclaim(stream, self.group, self.consumer, 0, [entry_id])
            pipe.xpending_range(stream, self.group, entry_id, entry_id, 1)
            claimed, pending = pipe.execute()
        fields = (claimed[0][1] or None) if claimed else None
        return Entry(stream, entry_id, fields, _count(pending[0]) if pending else 1)

    def claim_idle(
        self, stream: str, cursor: str, min_idle_ms: int
    ) -> tuple[str, list[Entry], list[str]]:
        """One ``XAUTOCLAIM`` page: entries any consumer has held longer than ``min_idle_ms``,
        now this consumer's (the claim is a delivery: their counts went up by one; the counts
        are read back with ``XPENDING``), and the ids the broker dropped from the pending list
        because they were trimmed from the stream. Returns the next cursor (``0-0``: done)."""
        answer: Any = self.client.xautoclaim(
            stream, self.group, self.consumer, min_idle_ms, cursor, count=self.batch_size
        )
        claimed = [(text(sid), fields or None) for sid, fields in answer[1]]
        deleted = [text(sid) for sid in answer[2]] if len(answer) > 2 else []
        counts = self.deliveries(stream, [sid for sid, _ in claimed])
        entries = [Entry(stream, sid, fields, counts.get(sid, 1)) for sid, fields in claimed]
        return text(answer[0]), entries, deleted

    def deliveries(self, stream: str, ids: Sequence[str]) -> dict[str, int]:
        """The delivery counts of pending entries (``XPENDING``, one round trip)."""
        if not ids:
            return {}
        with self.client.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xpending_range(stream, self.group, entry_id, entry_id, 1)
            pages: list[Any] = pipe.execute()
        return {text(p[0]["message_id"]): _count(p[0]) for p in pages if p}

    def state(self, stream: str) -> GroupState | None:
        """Lag and pending count of the group on ``stream`` (None: no such stream or group)."""
        try:
            groups: Any = self.client.xinfo_groups(stream)
        except redis.ResponseError:
            return None
        for group in groups:
            if text(group["name"]) == self.group:
                lag = group.get("lag")
                return GroupState(None if lag is None else int(lag), int(group.get("pending") or 0))
        return None

    def acknowledge(
        self,
        entries: Sequence[Entry],
        dead_letters: Sequence[Mapping[str, str]] = (),
        *,
        dead_letter_stream: str = "",
        dead_letter_maxlen: int = 100_000,
    ) -> None:
        """Add the dead letters and acknowledge the entries in one ``MULTI``: either both
        happen or neither, so a dead letter is written exactly once."""
        if dead_letters and not dead_letter_stream:
            raise ValueError("dead letters need a dead-letter stream")
        with self.client.pipeline(transaction=True) as pipe:
            for letter in dead_letters:
                pipe.xadd(
                    dead_letter_stream,
                    dict(letter),  # type: ignore[arg-type]
                    maxlen=dead_letter_maxlen,
                    approximate=True,
                )
            for stream, ids in by_stream(entries).items():
                pipe.xack(stream, self.group, *ids)
            pipe.execute()
