"""Settings of the stream consumer: the stream's broker settings plus the consumer's own.

Read like every component's settings (``mlops_common.settings``: environment first, then
``MLOPS_ENV_FILE`` or ``.env``).
Where the features go (Feast repo, registry, online and offline store) comes from the data
pipeline's own ``DataPipelineSettings``.

The retry bound ``MLOPS_STREAM_MAX_DELIVERIES`` (default 5, at least 2): an entry that fails
processing that many times (the broker's delivery count; retries after the broker or a store was
unreachable do not count) goes to the dead-letter stream with the error and is acknowledged.
"""

from __future__ import annotations

import re
import socket
from typing import Any, ClassVar, Self, overload

from pydantic import Field, model_validator

from mlops_common.events.driver_stats import StreamBrokerSettings

_NAME = re.compile(r"^[A-Za-z0-9._:@-]{1,100}$")


def _default_consumer_name() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:80] or "consumer"
    return f"{host}-1"


class _Key:
    """A broker key next to the stream, ``<stream>:<group>:<suffix>``, as a read-only class
    attribute of the settings (``settings.applied_key``)."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    @overload
    def __get__(self, settings: None, owner: type[Any]) -> _Key: ...

    @overload
    def __get__(self, settings: StreamConsumerSettings, owner: type[Any]) -> str: ...

    def __get__(self, settings: StreamConsumerSettings | None, owner: type[Any]) -> _Key | str:
        return self if settings is None else settings.key(self.suffix)


class StreamConsumerSettings(StreamBrokerSettings):
    """``MLOPS_STREAM_*`` settings of ``data-pipeline stream-consume``."""

    #: the consumer group; every consumer of the group shares the work and the de-duplication
    group: str = Field(default="data-pipeline", validation_alias="MLOPS_STREAM_GROUP")
    #: this consumer's name in the group; keep it stable across restarts so a restarted consumer
    #: finds its own pending entries at once (default: ``<hostname>-1``)
    consumer_name: str = Field(
        default_factory=_default_consumer_name, validation_alias="MLOPS_STREAM_CONSUMER_NAME"
    )
    #: where a new group starts reading: ``0`` (everything still in the stream) or ``$`` (new only)
    start_id: str = Field(default="0", validation_alias="MLOPS_STREAM_START_ID")
    batch_size: int = Field(
        default=500, ge=1, le=10_000, validation_alias="MLOPS_STREAM_BATCH_SIZE"
    )
    block_ms: int = Field(default=1000, ge=10, le=60_000, validation_alias="MLOPS_STREAM_BLOCK_MS")
    #: entries another consumer has held this long unacknowledged are taken over (XAUTOCLAIM)
    claim_min_idle_ms: int = Field(
        default=60_000, ge=100, validation_alias="MLOPS_STREAM_CLAIM_MIN_IDLE_MS"
    )
    claim_interval_s: float = Field(
        default=30.0, gt=0.0, validation_alias="MLOPS_STREAM_CLAIM_INTERVAL_S"
    )
    #: the retry bound: an entry that fails processing this many times (deliveries) is
    #: dead-lettered with the error (``mlops_common.streams``)
    max_deliveries: int = Field(
        default=5, ge=2, le=1000, validation_alias="MLOPS_STREAM_MAX_DELIVERIES"
    )
    #: how many applied event ids are remembered for de-duplication (newest by stream time)
    dedup_window: int = Field(
        default=1_000_000, ge=1000, validation_alias="MLOPS_STREAM_DEDUP_WINDOW"
    )
    #: events dated further than this into the future are dead-lettered
    max_future_skew_s: float = Field(
        default=300.0, ge=0.0, validation_alias="MLOPS_STREAM_MAX_FUTURE_SKEW_S"
    )
    dead_letter_maxlen: int = Field(
        default=100_000, ge=100, validation_alias="MLOPS_STREAM_DEAD_LETTER_MAXLEN"
    )
    #: write applied events to the offline store too (through the offline buffer)
    offline: bool = Field(default=True, validation_alias="MLOPS_STREAM_OFFLINE")
    #: flush the offline buffer to a parquet file at this many rows, or when its oldest row is
    #: this old
    offline_flush_rows: int = Field(
        default=50_000, ge=1, validation_alias="MLOPS_STREAM_OFFLINE_FLUSH_ROWS"
    )
    offline_flush_interval_s: float = Field(
        default=60.0, gt=0.0, validation_alias="MLOPS_STREAM_OFFLINE_FLUSH_INTERVAL_S"
    )
    #: /metrics port of the consumer (0: no metrics server)
    metrics_port: int = Field(
        default=0, ge=0, le=65535, validation_alias="MLOPS_STREAM_CONSUMER_METRICS_PORT"
    )
    backoff_initial: float = Field(
        default=0.2, gt=0.0, le=60.0, validation_alias="MLOPS_STREAM_BACKOFF_INITIAL"
    )
    backoff_max: float = Field(
        default=5.0, gt=0.0, le=600.0, validation_alias="MLOPS_STREAM_BACKOFF_MAX"
    )

    @model_validator(mode="after")
    def _names(self) -> Self:
        for field in ("group", "consumer_name"):
            if not _NAME.match(getattr(self, field)):
                raise ValueError(
                    f"{field} must be 1-100 characters of letters, digits and ._:@- "
                    f"(got {getattr(self, field)!r})"
                )
        if self.start_id != "$" and not re.match(r"^\d+(-\d+)?$", self.start_id):
            raise ValueError(f"start_id must be 0, $ or a stream id (got {self.start_id!r})")
        return self

    # -- keys in the broker, all next to the stream ----------------------------------------
    def key(self, suffix: str) -> str:
        return f"{self.stream}:{self.group}:{suffix}"

    #: ZSET of applied event ids (score: stream time in ms), the newest ``dedup_window``
    applied_key: ClassVar[_Key] = _Key("applied")
    #: HASH of effect counters that survive restarts: consumed, applied, duplicates, ...
    counters_key: ClassVar[_Key] = _Key("counters")
    #: STREAM of applied rows waiting for the next offline flush
    offline_buffer_key: ClassVar[_Key] = _Key("offline")
    #: the buffer range the current offline flush writes (survives a crash mid-flush)
    offline_intent_key: ClassVar[_Key] = _Key("offline:intent")
    offline_lock_key: ClassVar[_Key] = _Key("offline:lock")
