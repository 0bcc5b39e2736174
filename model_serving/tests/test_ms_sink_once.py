"""Exactly-once event writes: a batch whose reply is lost (Redis executed it, the client timed
out: a hung Redis resumed, a refused write in a pipelined batch) is retried without doubling."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from ms_fixtures import REDIS_URL, wait_for
from test_ms_events import prediction

from mlops_common.events import serving as events
from model_serving.metrics import ServingMetrics
from model_serving.sink import EventSink

pytestmark = pytest.mark.integration


@pytest.fixture
def stream() -> Iterator[str]:
    name = f"faults:test-sink:{uuid.uuid4().hex}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(name, *client.keys(f"{name}:sent:*"))  # type: ignore[misc]


class ReplyLost:
    """Pipelines whose first ``execute`` reaches Redis and then fails as if the reply was lost."""

    def __init__(self, client: redis.Redis) -> None:
        self.client, self.failed = client, 0
        self.real = client.pipeline

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        pipe = self.real(*args, **kwargs)
        execute = pipe.execute

        def execute_then_lose(*a: Any, **k: Any) -> Any:
            replies = execute(*a, **k)
            if not self.failed:
                self.failed += 1
                raise redis.TimeoutError("Timeout reading from socket")
            return replies

        pipe.execute = execute_then_lose  # type: ignore[method-assign]
        return pipe


def test_a_retried_batch_is_written_once(stream: str) -> None:
    sink = EventSink(
        REDIS_URL,
        {events.PREDICTION: stream},
        bound=100,
        maxlen=10_000,
        metrics=ServingMetrics(),
    )
    assert sink._client is not None
    lossy = ReplyLost(sink._client)
    sink._client.pipeline = lossy.pipeline  # type: ignore[method-assign]
    for _ in range(5):
        assert sink.submit(events.PREDICTION, prediction)
    sink.start()
    try:
        assert wait_for(lambda: sink.up is True and not sink._buffer, 10)
    finally:
        sink.stop()
    assert lossy.failed == 1
    assert redis.Redis.from_url(REDIS_URL).xlen(stream) == 5


def _sink_with_log(stream: str, wal: Path) -> EventSink:
    """A serving process's sink on ``wal`` (started by the caller)."""
    return EventSink(
        REDIS_URL,
        {events.PREDICTION: stream},
        bound=100,
        maxlen=10_000,
        metrics=ServingMetrics(),
        wal=wal,
    )


def test_events_of_answered_requests_survive_a_kill_through_the_write_ahead_log(
    stream: str, tmp_path: Path
) -> None:
    wal = tmp_path / "events.wal"
    down = EventSink(
        "redis://127.0.0.1:1/0",  # nothing listens: nothing leaves the process
        {events.PREDICTION: stream},
        bound=100,
        maxlen=10_000,
        metrics=ServingMetrics(),
        wal=wal,
        timeout=0.2,
    )
    for _ in range(3):
        assert down.submit(events.PREDICTION, prediction)
    # kill -9: no stop, no flush; what was submitted is only in the log

    restarted = _sink_with_log(stream, wal)
    restarted.start()
    try:
        assert wait_for(lambda: restarted.up is True and not restarted._buffer, 10)
        assert wait_for(lambda: wal.stat().st_size == 0, 5)
    finally:
        restarted.stop()
    assert redis.Redis.from_url(REDIS_URL).xlen(stream) == 3
    again = _sink_with_log(stream, wal)
    again.start()  # an empty log: nothing written twice
    again.stop()
    assert redis.Redis.from_url(REDIS_URL).xlen(stream) == 3
