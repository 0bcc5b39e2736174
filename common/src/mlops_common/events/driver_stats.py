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
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlops_common.events.codec import (
    MalformedEvent,
    UtcDatetime,
    describe,
    fields_as_text,
    format_timestamp,
    strict_text,
)
from mlops_common.settings import PlatformSettings

__all__ = [
    "DEFAULT_STREAM",
    "FEATURES",
    "FIELDS",
    "SCHEMA_VERSION",
    "DriverStatsEvent",
    "MalformedEvent",
    "StreamBrokerSettings",
    "decode",
    "fields_as_text",
    "format_timestamp",
]

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


def decode(fields: Mapping[Any, Any]) -> DriverStatsEvent:
    """Parse a Redis stream entry's fields (bytes or str) into an event.

    Raises ``MalformedEvent`` naming the first broken rule (or every range violation at once).
    """
    text = strict_text(fields)
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
        raise MalformedEvent(describe(exc)) from None


class StreamBrokerSettings(PlatformSettings):
    """Where the driver stats stream lives: the contract of its producer and its consumer.

    The broker is ``MLOPS_STREAM_REDIS_URL`` when set (a dedicated broker), else the platform's
    Redis by the one rule (``PlatformSettings.redis_url``: ``MLOPS_REDIS_URL``, a Redis
    ``MLOPS_ONLINE_STORE_URL``, the launcher's own redis-server). Malformed events go to
    ``<stream>:dead``.
    """

    stream_redis_url: str = Field(default="", validation_alias="MLOPS_STREAM_REDIS_URL")
    stream: str = Field(default=DEFAULT_STREAM, min_length=1, validation_alias="MLOPS_STREAM_NAME")

    @property
    def broker_url(self) -> str:
        return self.redis_url(self.stream_redis_url, own_server=True)

    @property
    def dead_letter_stream(self) -> str:
        return f"{self.stream}:dead"
