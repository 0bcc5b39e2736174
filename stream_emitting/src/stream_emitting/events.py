"""The driver statistics event: the one schema of the driver stats stream, version 1.

Producer (``stream_emitting.producer``) and consumer (``data_pipeline.stream_consumer``) both
import this module; nothing else defines the event.

A Redis stream entry is a flat map of strings. ``DriverStatsEvent.encode()`` gives that map and
``decode(fields)`` parses it back, raising ``MalformedEvent`` (with a reason naming the field and
the rule) for anything that is not a valid version-1 event:

=================  ==========================================================================
field              encoding and rule
=================  ==========================================================================
schema_version     ``"1"`` (exactly; any other version is refused, not guessed at)
event_id           1-200 characters of ``[A-Za-z0-9._:@/-]``, unique per event (the producer
                   writes ``<producer id>:<sequence number>``); the consumer de-duplicates on it
driver_id          decimal integer >= 1 (the ``driver`` entity's join key, int64)
event_timestamp    ISO 8601 with a UTC offset (``2024-01-01T05:00:00.250000Z``): the time the
                   statistics describe; naive times are refused
conv_rate          decimal number in [0, 1]
acc_rate           decimal number in [0, 1]
avg_daily_trips    decimal integer >= 0
rating             decimal number in [1, 5]
cancel_rate        decimal number in [0, 1]
produced_at        ISO 8601 with a UTC offset: when the producer emitted the event
=================  ==========================================================================

The ranges are those of the data pipeline's rules for ``driver_hourly_stats``. Numbers are plain
decimal notation (an exponent is allowed); ``nan``, ``inf``, empty strings, unknown and missing
fields are refused. Timestamps are normalised to UTC.

Versioning: a change that a version-1 consumer could misread (a renamed, removed or re-typed
field, a changed range) is a new ``schema_version``; consumers refuse versions they do not know,
so such events land in the dead-letter stream instead of being misapplied.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION: Literal[1] = 1

#: The default Redis stream of driver statistics events.
DEFAULT_STREAM = "mlops:driver_stats"

#: The five driver features an event carries, in the order of the feature view.
FEATURES: tuple[str, ...] = ("conv_rate", "acc_rate", "avg_daily_trips", "rating", "cancel_rate")

#: Every field of a version-1 event, in encoding order.
FIELDS: tuple[str, ...] = (
    "schema_version",
    "event_id",
    "driver_id",
    "event_timestamp",
    *FEATURES,
    "produced_at",
)

_EVENT_ID = re.compile(r"^[A-Za-z0-9._:@/-]{1,200}$")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_DECIMAL = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_INT64_MAX = 2**63 - 1


class MalformedEvent(ValueError):
    """A stream entry that is not a valid driver statistics event.

    ``reason`` says which field broke which rule; ``fields`` are the entry's original fields
    (decoded to text where possible) for the dead-letter stream.
    """

    def __init__(self, reason: str, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields: dict[str, str] = dict(fields or {})


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class DriverStatsEvent(BaseModel):
    """One driver's statistics at one moment (schema version 1); see the module docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: str = Field(pattern=_EVENT_ID.pattern)
    driver_id: int = Field(ge=1, le=_INT64_MAX)
    event_timestamp: UtcDatetime
    conv_rate: Rate
    acc_rate: Rate
    avg_daily_trips: int = Field(ge=0, le=_INT64_MAX)
    rating: float = Field(ge=1.0, le=5.0)
    cancel_rate: Rate
    produced_at: UtcDatetime

    def encode(self) -> dict[str, str]:
        """The Redis stream fields of this event (every value a string)."""
        return {
            "schema_version": str(self.schema_version),
            "event_id": self.event_id,
            "driver_id": str(self.driver_id),
            "event_timestamp": format_timestamp(self.event_timestamp),
            "conv_rate": repr(self.conv_rate),
            "acc_rate": repr(self.acc_rate),
            "avg_daily_trips": str(self.avg_daily_trips),
            "rating": repr(self.rating),
            "cancel_rate": repr(self.cancel_rate),
            "produced_at": format_timestamp(self.produced_at),
        }

    def features(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in FEATURES}


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a ``Z`` suffix."""
    if value.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    raise TypeError(f"expected bytes or str, got {type(value).__name__}")


def fields_as_text(fields: Mapping[Any, Any]) -> dict[str, str]:
    """The entry's fields as text; undecodable bytes are shown with backslash escapes."""
    out: dict[str, str] = {}
    for key, value in fields.items():
        k = key.decode("utf-8", "backslashreplace") if isinstance(key, bytes) else str(key)
        v = value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)
        out[k] = v
    return out


def _parse_int(name: str, raw: str) -> int:
    if not _INTEGER.match(raw):
        raise MalformedEvent(f"{name}: {raw!r} is not an integer")
    return int(raw)


def _parse_number(name: str, raw: str) -> float:
    if not _DECIMAL.match(raw):
        raise MalformedEvent(f"{name}: {raw!r} is not a decimal number")
    value = float(raw)
    if not math.isfinite(value):
        raise MalformedEvent(f"{name}: {raw!r} is not a finite number")
    return value


def _parse_timestamp(name: str, raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise MalformedEvent(f"{name}: {raw!r} is not an ISO 8601 timestamp") from None
    if value.tzinfo is None:
        raise MalformedEvent(f"{name}: {raw!r} has no UTC offset (naive timestamps are refused)")
    return value


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"]) or "event"
        parts.append(f"{loc}: {error['msg']}")
    return "; ".join(parts)


def decode(fields: Mapping[Any, Any]) -> DriverStatsEvent:
    """Parse a Redis stream entry's fields (bytes or str) into an event.

    Raises ``MalformedEvent`` naming the first broken rule (or every range violation at once).
    """
    try:
        text = {_text(k): _text(v) for k, v in fields.items()}
    except (UnicodeDecodeError, TypeError) as exc:
        raise MalformedEvent(f"not UTF-8 text: {exc}", fields_as_text(fields)) from None
    try:
        return _decode_text(text)
    except MalformedEvent as exc:
        raise MalformedEvent(exc.reason, text) from None


def _decode_text(text: dict[str, str]) -> DriverStatsEvent:
    version = text.get("schema_version")
    if version is None:
        raise MalformedEvent("schema_version: missing")
    if version != str(SCHEMA_VERSION):
        raise MalformedEvent(
            f"schema_version: unsupported version {version!r} (this reader knows {SCHEMA_VERSION})"
        )
    missing = [name for name in FIELDS if name not in text]
    if missing:
        raise MalformedEvent(f"missing field(s): {', '.join(missing)}")
    unknown = sorted(set(text) - set(FIELDS))
    if unknown:
        raise MalformedEvent(f"unknown field(s): {', '.join(unknown)}")
    values: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "event_id": text["event_id"],
        "driver_id": _parse_int("driver_id", text["driver_id"]),
        "event_timestamp": _parse_timestamp("event_timestamp", text["event_timestamp"]),
        "conv_rate": _parse_number("conv_rate", text["conv_rate"]),
        "acc_rate": _parse_number("acc_rate", text["acc_rate"]),
        "avg_daily_trips": _parse_int("avg_daily_trips", text["avg_daily_trips"]),
        "rating": _parse_number("rating", text["rating"]),
        "cancel_rate": _parse_number("cancel_rate", text["cancel_rate"]),
        "produced_at": _parse_timestamp("produced_at", text["produced_at"]),
    }
    try:
        return DriverStatsEvent.model_validate(values)
    except ValidationError as exc:
        raise MalformedEvent(_describe(exc)) from None
