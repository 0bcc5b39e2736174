"""The stream consumer's own logic against the machine's Redis: validation, dead letters,
de-duplication, the atomic commit, crash recovery at every step, takeover of a dead consumer's
entries, and the offline buffer's exactly-once flush.

The online store here is a recording sink (the consumer's contract with it is "idempotent, newest
wins"); test_dp_stream_feast.py runs the same consumer against Feast on Redis."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis

from data_pipeline.stream_consumer import (
    OwnershipLost,
    ParquetOfflineSink,
    StreamConsumer,
    StreamConsumerSettings,
)
from mlops_common.events.driver_stats import DriverStatsEvent
from mlops_testing.stream import (
    consumer_settings,
    make_event,
)

pytestmark = pytest.mark.integration

#: the columns of the offline rows, in order (the sink's frames add ``event_id`` in front)
OFFLINE_COLUMNS = [
    "driver_id",
    "event_timestamp",
    "created",
    "conv_rate",
    "acc_rate",
    "avg_daily_trips",
    "rating",
    "cancel_rate",
]


class RecordingSink:
    """Online sink that records every frame it is given; fails the first ``failures`` writes."""

    def __init__(self, failures: int = 0) -> None:
        self.frames: list[pd.DataFrame] = []
        self.failures = failures

    def write(self, frame: pd.DataFrame) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("online store unavailable (test)")
        self.frames.append(frame)

    @property
    def event_ids(self) -> list[str]:
        return [i for f in self.frames for i in f["event_id"]]


@pytest.fixture
def offline_root(tmp_path: Path) -> Path:
    return tmp_path / "offline"


def grouped(stream: str, offline_root: Path, **overrides: Any) -> StreamConsumer:
    """A ``consumer`` whose consumer group exists."""
    made = consumer(stream, offline_root, **overrides)
    made.ensure_group()
    return made


def settings_for(stream: str, **overrides: Any) -> StreamConsumerSettings:
    return consumer_settings(stream, **overrides)


def consumer(
    stream: str, offline_root: Path, online: RecordingSink | None = None, **overrides: Any
) -> StreamConsumer:
    return StreamConsumer(
        settings_for(stream, **overrides),
        online or RecordingSink(),
        ParquetOfflineSink(offline_root),
    )


def add(client: redis.Redis, stream: str, *events: DriverStatsEvent | dict[str, str]) -> list[str]:
    ids = []
    for event in events:
        fields = event.encode() if isinstance(event, DriverStatsEvent) else event
        ids.append(client.xadd(stream, fields).decode())  # type: ignore[arg-type, union-attr]
    return ids


def offline_rows(root: Path) -> pd.DataFrame:
    files = sorted(root.rglob("*.parquet"))
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def counters(client: redis.Redis, settings: StreamConsumerSettings) -> dict[str, int]:
    raw: Any = client.hgetall(settings.counters_key)
    return {k.decode(): int(v) for k, v in raw.items()}


# --- the happy path, dead letters, duplicates --------------------------------------------------


def test_valid_events_are_applied_once_and_acknowledged(
    client: redis.Redis, stream: str, offline_root: Path
) -> None:
    events = [make_event(i, driver_id=1001 + i % 3) for i in range(25)]
    add(client, stream, *events)
    c = consumer(stream, offline_root, batch_size=10)
    stats = c.run(idle_exit_s=0.5)
    assert stats.consumed == 25 and stats.applied == 25 and stats.batches == 3
    sink = c.online
    assert isinstance(sink, RecordingSink)
    assert sorted(sink.event_ids) == sorted(e.event_id for e in events)
    frame = sink.frames[0]
    assert list(frame.columns) == ["event_id", *OFFLINE_COLUMNS]
    assert str(frame["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["avg_daily_trips"].dtype) == "int64"
    info: Any = client.xinfo_groups(stream)
    assert info[0]["pending"] == 0 and info[0]["lag"] == 0
    assert counters(client, c.settings) == {
        "consumed": 25,
        "applied": 25,
        "duplicates": 0,
        "dead_lettered": 0,
        "trimmed": 0,
    }
    # the final flush wrote every applied row to the offline store, once
    rows = offline_rows(offline_root)
    assert len(rows) == 25
    assert sorted(zip(rows["driver_id"], rows["event_timestamp"], strict=True)) == sorted(
        (e.driver_id, pd.Timestamp(e.event_timestamp)) for e in events
    )
    assert client.xlen(c.settings.offline_buffer_key) == 0


def test_malformed_events_go_to_the_dead_letter_stream_with_reason_and_fields(
    client: redis.Redis, stream: str, offline_root: Path
) -> None:
    good = make_event(1)
    bad_range = {**make_event(2).encode(), "rating": "7.5"}
    bad_missing = {k: v for k, v in make_event(3).encode().items() if k != "conv_rate"}
    future = make_event(4, at=datetime.now(UTC) + timedelta(hours=2))
    ids = add(client, stream, good, bad_range, bad_missing, future, {"hello": "world"})
    c = consumer(stream, offline_root)
    stats = c.run(idle_exit_s=0.5)
    assert stats.applied == 1 and stats.dead_lettered == 4 and stats.consumed == 5
    dead = client.xrange(c.settings.dead_letter_stream)
    assert len(dead) == 4
    letters = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in dead]
    by_source = {letter["source_id"]: letter for letter in letters}
    assert set(by_source) == set(ids[1:])
    assert "rating: Input should be less than or equal to 5" in by_source[ids[1]]["reason"]
    assert json.loads(by_source[ids[1]]["original"]) == bad_range
    assert by_source[ids[2]]["reason"] == "missing field(s): conv_rate"
    assert "in the future" in by_source[ids[3]]["reason"]
    assert by_source[ids[4]]["reason"] == "schema_version: missing"
    for letter in letters:
        assert letter["source_stream"] == stream and letter["consumer"] == "test-consumer"
    assert client.xinfo_groups(stream)[0]["pending"] == 0  # type: ignore[index]
    assert len(offline_rows(offline_root)) == 1


def test_duplicates_are_applied_once(client: redis.Redis, stream: str, offline_root: Path) -> None:
    a, b = make_event(1), make_event(2, driver_id=1002)
    # the same event twice in one batch, and again in a later batch
    add(client, stream, a, a, b)
    first = consumer(stream, offline_root)
    first.run(idle_exit_s=0.3)
    add(client, stream, b, a, make_event(3))
    second = consumer(stream, offline_root)
    second.run(idle_exit_s=0.3)
    assert first.stats.applied == 2 and first.stats.duplicates == 1
    assert second.stats.applied == 1 and second.stats.duplicates == 2
    assert counters(client, first.settings)["applied"] == 3
    assert counters(client, first.settings)["duplicates"] == 3
    rows = offline_rows(offline_root)
    assert len(rows) == 3


def test_dedup_window_keeps_the_newest_ids(
    client: redis.Redis, stream: str, offline_root: Path
) -> None:
    add(client, stream, *[make_event(i) for i in range(1500)])
    c = consumer(stream, offline_root, dedup_window=1000, offline=False)
    c.run(idle_exit_s=0.5)
    assert client.zcard(c.settings.applied_key) == 1000
    remembered = client.zrange(c.settings.applied_key, 0, -1)
    assert b"test:1499" in remembered and b"test:0" not in remembered


# --- failures and crashes ------------------------------------------------------------------------


def test_online_store_failure_leaves_the_batch_pending_and_it_is_retried(
    client: redis.Redis, stream: str, offline_root: Path
) -> None:
    add(client, stream, *[make_event(i) for i in range(5)])
    sink = RecordingSink(failures=2)
    c = consumer(stream, offline_root, online=sink)
    stats = c.run(idle_exit_s=1.0)
    assert stats.errors == 2
    assert stats.applied == 5 and len(sink.frames) == 1
    assert counters(client, c.settings)["consumed"] == 5


class PoisonSink(RecordingSink):
    """An online store that cannot take one event (a data error, not an outage)."""

    def __init__(self, poison: str) -> None:
        super().__init__()
        self.poison = poison
        self.refused = 0

    def write(self, frame: pd.DataFrame) -> None:
        if self.poison in set(frame["event_id"]):
            self.refused += 1
            raise ValueError(f"online store refuses {self.poison} (test)")
        super().write(frame)


def test_an_event_that_fails_processing_is_dead_lettered_at_the_retry_bound(
    client: redis.Redis, stream: str, offline_root: Path
) -> None:
    """Nothing is retried forever: the event that makes every online write of its batch fail
    is tried in its batch, then alone, and after MLOPS_STREAM_MAX_DELIVERIES attempts
    dead-lettered with the error; the events around it are applied once."""
    events = [make_event(i, driver_id=1001 + i) for i in range(5)]
    ids = add(client, stream, *events)
    sink = PoisonSink(events[2].event_id)
    c = consumer(stream, offline_root, online=sink, max_deliveries=3)
    stats = c.run(idle_exit_s=1.0)
    assert sink.refused == 3
    assert sorted(sink.event_ids) == sorted(e.event_id for i, e in enumerate(events) if i != 2)
    assert stats.applied == 4 and stats.dead_lettered == 1 and stats.consumed == 5
    [(_, raw)] = client.xrange(c.settings.dead_letter_stream)
    letter = {k.decode(): v.decode() for k, v in raw.items()}
    assert letter["source_id"] == ids[2] and letter["deliveries"] == "3"
    assert letter["reason"] == (
        "processing failed 3 times (max_deliveries 3): ValueError: online store refuses "
        f"{events[2].event_id} (test)"
    )
    assert json.loads(letter["original"]) == events[2].encode()
    assert counters(client, c.settings)["dead_lettered"] == 1
    assert counters(client, c.settings)["applied"] == 4
    assert client.xinfo_groups(stream)[0]["pending"] == 0  # type: ignore[index]
    assert len(offline_rows(offline_root)) == 4


class CrashBeforeCommit(Exception):
    pass


def test_crash_between_online_write_and_commit_is_redone_once(
    client: redis.Redis, stream: str, offline_root: Path
) -> None:
    """The process dies after the online write and before the commit: nothing was acknowledged,
    so a restarted consumer (same name) re-applies the batch; the online write is repeated (it is
    idempotent), the counted effects and the offline rows are not."""
    events = [make_event(i) for i in range(8)]
    add(client, stream, *events)
    doomed = consumer(stream, offline_root)

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise CrashBeforeCommit

    doomed._commit = crash  # type: ignore[assignment, method-assign]
    doomed.ensure_group()
    with pytest.raises(CrashBeforeCommit):
        doomed.process(doomed.read())
    assert client.xinfo_groups(stream)[0]["pending"] == 8  # type: ignore[index]
    assert len(doomed.online.frames) == 1  # type: ignore[attr-defined]

    restarted = consumer(stream, offline_root)
    stats = restarted.run(idle_exit_s=0.5)
    assert stats.applied == 8
    assert counters(client, restarted.settings)["applied"] == 8
    assert len(offline_rows(offline_root)) == 8
    assert client.xinfo_groups(stream)[0]["pending"] == 0  # type: ignore[index]


def test_a_dead_consumers_entries_are_claimed_on_start(
    client: redis.Redis, stream: str, offline_root: Path
) -> None:
    add(client, stream, *[make_event(i) for i in range(6)])
    dead = grouped(stream, offline_root, consumer_name="dead-one")
    assert len(dead.read()) == 6  # delivered, never acknowledged: it "died"
    survivor = consumer(stream, offline_root, consumer_name="survivor", claim_min_idle_ms=100)
    pending: Any = client.xpending(stream, survivor.settings.group)
    assert pending["pending"] == 6
    time.sleep(0.2)
    stats = survivor.run(idle_exit_s=0.5)
    assert stats.claimed == 6 and stats.applied == 6
    assert client.xpending(stream, survivor.settings.group)["pending"] == 0  # type: ignore[index]


def test_a_batch_taken_over_by_another_consumer_is_not_committed_twice(
    client: redis.Redis, stream: str, offline_root: Path
) -> None:
    """A slow consumer loses its entries to a claim before it commits: its commit aborts."""
    add(client, stream, *[make_event(i) for i in range(4)])
    slow = grouped(stream, offline_root, consumer_name="slow")
    batch = slow.read()
    other = consumer(stream, offline_root, consumer_name="other", claim_min_idle_ms=100)
    time.sleep(0.2)
    assert other.core.claim_idle() == 4
    with pytest.raises(OwnershipLost):
        slow.process(batch)
    assert counters(client, slow.settings)["applied"] == 4
    assert slow.stats.applied == 0 and other.stats.applied == 4


def test_trimmed_pending_entries_are_counted(
    client: redis.Redis, stream: str, offline_root: Path
) -> None:
    add(client, stream, *[make_event(i) for i in range(3)])
    c = grouped(stream, offline_root)
    c.read()  # delivered...
    client.xtrim(stream, maxlen=0)  # ...then trimmed before it was processed
    stats = consumer(stream, offline_root).run(idle_exit_s=0.3)
    assert stats.trimmed == 3 and stats.applied == 0
    assert counters(client, c.settings)["trimmed"] == 3


def test_consumer_recreates_a_lost_group(
    client: redis.Redis, stream: str, offline_root: Path
) -> None:
    """A broker restart without persistence loses the stream and the group: the consumer
    recreates them and carries on."""
    c = consumer(stream, offline_root)
    thread = threading.Thread(target=c.run, kwargs={"duration": 4.0})
    thread.start()
    try:
        time.sleep(0.5)
        client.delete(stream)
        time.sleep(0.5)
        add(client, stream, make_event(1))
        deadline = time.monotonic() + 3
        while c.stats.applied < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        c.stop.set()
        thread.join(timeout=10)
    assert c.stats.applied == 1 and c.stats.errors >= 1


# --- the offline buffer and its flushes -------------------------------------------------------


def test_offline_flush_waits_for_rows_or_time_and_partitions_by_date(
    client: redis.Redis, stream: str, offline_root: Path
) -> None:
    day1 = datetime(2024, 3, 1, 23, 59, 58, tzinfo=UTC)
    events = [make_event(i, at=day1 + timedelta(seconds=i)) for i in range(4)]
    add(client, stream, *events)
    c = grouped(stream, offline_root, offline_flush_rows=100, offline_flush_interval_s=3600)
    c.process(c.read())
    assert c.flusher is not None
    assert c.flusher.flush() == 0  # neither 100 rows nor an hour old
    assert client.xlen(c.settings.offline_buffer_key) == 4
    assert c.flusher.flush(force=True) == 4
    files = sorted(p.relative_to(offline_root).as_posix() for p in offline_root.rglob("*.parquet"))
    assert [f.split("/")[0] for f in files] == ["date=2024-03-01", "date=2024-03-02"]
    assert files[0].split("/")[1] == files[1].split("/")[1]  # one flush, one name
    assert len(offline_rows(offline_root)) == 4
    assert list(pd.read_parquet(offline_root / files[0]).columns) == OFFLINE_COLUMNS
    add(client, stream, *[make_event(10 + i) for i in range(3)])
    c2 = grouped(stream, offline_root, offline_flush_rows=3, offline_flush_interval_s=3600)
    c2.process(c2.read())
    assert c2.flusher is not None and c2.flusher.flush() == 3  # 3 rows: due


class FailingAfterWrite(ParquetOfflineSink):
    """Writes the file, then 'crashes' before the buffer is trimmed."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.crashes = 1

    def write(self, frame: pd.DataFrame, name: str) -> None:
        super().write(frame, name)
        if self.crashes:
            self.crashes -= 1
            raise CrashBeforeCommit


def test_interrupted_flush_is_redone_to_the_same_file(
    client: redis.Redis, stream: str, offline_root: Path
) -> None:
    add(client, stream, *[make_event(i) for i in range(5)])
    settings = settings_for(stream)
    c = StreamConsumer(settings, RecordingSink(), FailingAfterWrite(offline_root))
    c.ensure_group()
    c.process(c.read())
    assert c.flusher is not None
    with pytest.raises(CrashBeforeCommit):
        c.flusher.flush(force=True)
    assert client.get(settings.offline_intent_key) is not None
    files_after_crash = sorted(offline_root.rglob("*.parquet"))
    assert len(files_after_crash) == 1 and len(offline_rows(offline_root)) == 5
    # new rows arrive before the flush is redone: they must not join the interrupted range
    add(client, stream, *[make_event(10 + i) for i in range(2)])
    c.process(c.read())
    assert c.flusher.flush() == 5  # the recorded range, to the same file
    assert sorted(offline_root.rglob("*.parquet")) == files_after_crash
    assert c.flusher.flush(force=True) == 2
    rows = offline_rows(offline_root)
    assert len(rows) == 7 and rows["event_timestamp"].is_unique
    assert client.get(settings.offline_intent_key) is None
    assert client.xlen(settings.offline_buffer_key) == 0


def test_offline_writes_can_be_disabled(
    client: redis.Redis, stream: str, offline_root: Path
) -> None:
    add(client, stream, make_event(1))
    c = StreamConsumer(settings_for(stream, offline=False), RecordingSink())
    assert c.run(idle_exit_s=0.3).applied == 1
    assert not client.exists(c.settings.offline_buffer_key)
    with pytest.raises(ValueError, match="no offline sink"):
        StreamConsumer(settings_for(stream), RecordingSink())
