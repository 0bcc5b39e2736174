"""What the consumer core hands a component: stream entries, reads, and the dead-letter shape."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from mlops_common.events.codec import fields_as_text, format_timestamp

#: An entry's fields as redis-py returns them (bytes keys and values; str with
#: ``decode_responses``).
Fields = Mapping[Any, Any]


def text(value: bytes | str) -> str:
    """A stream id, key or name from the broker as text."""
    return value.decode() if isinstance(value, bytes) else value


def stream_ms(entry_id: str) -> int:
    """The millisecond part of a stream id (the time the broker added the entry)."""
    return int(entry_id.split("-", 1)[0])


class Entry(NamedTuple):
    """One stream entry delivered to this consumer and not yet acknowledged (a named tuple:
    immutable and cheap, one is made per entry read)."""

    stream: str
    id: str
    #: None: the entry was trimmed from the stream (MAXLEN) before it was processed; the handler
    #: acknowledges it with the others and applies nothing
    fields: Fields | None
    #: how often the group delivered it (1: first delivery; more: read again after a crash, an
    #: error or a takeover from another consumer)
    deliveries: int = 1
    #: set by the core when the entry reached the retry bound: the handler must not apply it
    #: but dead-letter it with this reason (in the same commit that acknowledges the batch)
    refused: str | None = None

    @property
    def trimmed(self) -> bool:
        return self.fields is None

    def refuse(self, reason: str) -> Entry:
        return self._replace(refused=reason)


@dataclass(frozen=True, slots=True)
class ReadResult:
    """New entries of one ``XREADGROUP`` over every stream of the group."""

    entries: list[Entry]
    #: wall-clock time (the core's clock) just before the read
    began: float
    #: the read left nothing behind: fewer entries than the batch size on every stream, so every
    #: entry written before ``began`` has been delivered
    drained: bool


def _safe(value: str) -> str:
    """Text the broker client can encode (lone surrogates become backslash escapes)."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def dead_letter(
    entry: Entry, reason: str, *, group: str, consumer: str, at: float
) -> dict[str, str]:
    """The fields of a dead letter, the one shape every consumer writes: why, where the entry
    came from, who gave up on it, after how many deliveries, when, and the original fields (JSON;
    bytes that are not UTF-8 as backslash escapes)."""
    fields = {
        "reason": reason,
        "source_stream": entry.stream,
        "source_id": entry.id,
        "group": group,
        "consumer": consumer,
        "deliveries": str(entry.deliveries),
        "dead_at": format_timestamp(datetime.fromtimestamp(at, UTC)),
        "original": json.dumps(fields_as_text(entry.fields or {})),
    }
    return {key: _safe(value) for key, value in fields.items()}


def by_stream(entries: Sequence[Entry]) -> dict[str, list[str]]:
    """Entry ids grouped by stream, in order."""
    out: dict[str, list[str]] = {}
    for entry in entries:
        out.setdefault(entry.stream, []).append(entry.id)
    return out
