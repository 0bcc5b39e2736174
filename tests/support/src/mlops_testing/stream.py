"""Test support for the stream consumer: test-unique stream keys on a real Redis, cleaned up."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from data_pipeline.stream_consumer.settings import StreamConsumerSettings
from mlops_common.events.driver_stats import DriverStatsEvent

#: Read when this module is imported: before fixtures scrub MLOPS_* from the environment.
TEST_REDIS_URL = os.environ.get("MLOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unique_stream() -> str:
    return f"test:dp:{uuid.uuid4().hex[:12]}"


def delete_stream_keys(url: str, stream: str) -> None:
    """Delete the stream and every key the consumer derives from it (``<stream>:*``)."""
    client = redis.Redis.from_url(url)
    try:
        keys = [stream, *client.scan_iter(match=f"{stream}:*", count=1000)]
        client.delete(*keys)
    finally:
        client.close()


@contextmanager
def stream_keys(url: str = TEST_REDIS_URL) -> Iterator[str]:
    stream = unique_stream()
    try:
        yield stream
    finally:
        delete_stream_keys(url, stream)


def consumer_settings(
    stream: str, url: str = TEST_REDIS_URL, **overrides: Any
) -> StreamConsumerSettings:
    values: dict[str, Any] = {
        "stream_redis_url": url,
        "stream": stream,
        "consumer_name": "test-consumer",
        "block_ms": 100,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
    }
    values.update(overrides)
    # no env file: a developer's .env must not change what the tests run with
    return StreamConsumerSettings(_env_file=None, **values)  # type: ignore[call-arg]


def make_event(
    seq: int, driver_id: int = 1001, at: datetime | None = None, **features: Any
) -> DriverStatsEvent:
    when = at or datetime(2024, 3, 1, tzinfo=UTC) + timedelta(seconds=seq)
    values: dict[str, Any] = {
        "event_id": f"test:{seq}",
        "driver_id": driver_id,
        "event_timestamp": when,
        "conv_rate": 0.5,
        "acc_rate": 0.8,
        "avg_daily_trips": 10 + seq % 7,
        "rating": 4.5,
        "cancel_rate": 0.05,
        "produced_at": when,
    }
    values.update(features)
    return DriverStatsEvent(**values)
