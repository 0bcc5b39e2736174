"""The stream consumer against the real feature store: Feast with the platform's feature repo
applied in a test-unique project, online store on the machine's Redis, file registry and offline
store in a temporary data directory.

- a valid event changes the driver's online features within seconds, and its offline row is
  what Feast's historical retrieval returns;
- a malformed event lands in the dead-letter stream and changes nothing;
- the consumer process is killed (SIGKILL) twice mid-stream and restarted (once under its own
  name, once under another that must claim the dead one's entries): counting the effects shows
  every event applied exactly once, online and offline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis

from data_pipeline import feature_store as fs
from data_pipeline.settings import DataPipelineSettings
from data_pipeline.stream_consumer import StreamConsumer
from data_pipeline.stream_consumer.sinks import feature_store_sinks
from mlops_common.events.driver_stats import DriverStatsEvent
from mlops_testing.stream import (
    TEST_REDIS_URL,
    consumer_settings,
    make_event,
)

pytestmark = pytest.mark.integration


@dataclass
class FeastWorld:
    settings: DataPipelineSettings
    data_dir: Path

    @property
    def offline_dir(self) -> Path:
        return fs.offline_table_dir(self.settings)

    def env(self) -> dict[str, str]:
        """The environment a consumer process needs to reach this feature store."""
        return {
            "MLOPS_DATA_DIR": str(self.data_dir),
            "MLOPS_ONLINE_STORE_URL": TEST_REDIS_URL,
            "MLOPS_FEAST_PROJECT": self.settings.mlops_feast_project,
            "MLOPS_ENV_FILE": str(self.data_dir / "absent.env"),
        }


@pytest.fixture(scope="module")
def feast_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeastWorld]:
    data_dir = tmp_path_factory.mktemp("stream_feast")
    project = f"test_stream_{uuid.uuid4().hex[:10]}"
    settings = DataPipelineSettings(
        mlops_data_dir=data_dir,
        mlops_database_url="",
        mlops_online_store_url=TEST_REDIS_URL,
        mlops_redis_url="",
        mlops_feast_project=project,
    )
    fs.apply(settings)
    try:
        yield FeastWorld(settings, data_dir)
    finally:
        client = redis.Redis.from_url(TEST_REDIS_URL)
        keys = list(client.scan_iter(match=b"*" + project.encode(), count=1000))
        if keys:
            client.delete(*keys)
        client.close()


_STORES: dict[str, Any] = {}


def online_values(world: FeastWorld, driver_ids: list[int]) -> dict[int, dict[str, Any]]:
    key = world.settings.mlops_feast_project
    store = _STORES.get(key) or _STORES.setdefault(key, fs.feature_store(world.settings))
    answer = store.get_online_features(
        features=store.get_feature_service(fs.FEATURE_SERVICE),
        entity_rows=[{"driver_id": d} for d in driver_ids],
    ).to_dict()
    return {
        d: {name: answer[name][i] for name in fs.FEATURE_NAMES}
        for i, d in enumerate(answer["driver_id"])
    }


def features_of(event: DriverStatsEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in fs.FEATURE_NAMES}


def offline_rows(world: FeastWorld) -> pd.DataFrame:
    files = sorted(world.offline_dir.rglob("stream-*.parquet"))
    if not files:
        return pd.DataFrame(columns=list(fs.OFFLINE_COLUMNS))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> float | None:
    """Seconds until ``check()`` held, or None after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(interval)
    return None


def test_an_event_changes_online_features_within_seconds(
    feast_world: FeastWorld, stream: str, client: redis.Redis
) -> None:
    online, offline = feature_store_sinks(feast_world.settings)
    settings = consumer_settings(stream, offline_flush_interval_s=3600)
    consumer = StreamConsumer(settings, online, offline)
    thread = threading.Thread(target=consumer.run, kwargs={"duration": 60})
    thread.start()
    try:
        assert wait_for(lambda: bool(client.exists(stream)), 10) is not None  # group created
        driver = 1777
        online_values(feast_world, [driver])  # warm the reading side: time the consumer only
        now = datetime.now(UTC).replace(microsecond=0)

        def emit(seq: int, seconds_ago: int, **features: Any) -> DriverStatsEvent:
            """Add an event of `driver` from `seconds_ago` (a unique id) to the stream."""
            at = now - timedelta(seconds=seconds_ago)
            event = make_event(
                seq, driver_id=driver, at=at, event_id=f"feast:{uuid.uuid4().hex}", **features
            )
            client.xadd(stream, event.encode())  # type: ignore[arg-type]
            return event

        first = emit(1, 30, conv_rate=0.1234, avg_daily_trips=77)
        latency = wait_for(
            lambda: online_values(feast_world, [driver])[driver] == features_of(first), 10
        )
        assert latency is not None and latency < 5.0, latency
        print(f"\nonline features changed {latency * 1000:.0f} ms after the event was emitted")

        second = emit(2, 10, rating=3.21)
        assert (
            wait_for(
                lambda: online_values(feast_world, [driver])[driver] == features_of(second), 10
            )
            is not None
        )

        # malformed: dead-lettered with its reason; the online value does not move
        bad = {**make_event(3, driver_id=driver, at=now).encode(), "rating": "9.5"}
        client.xadd(stream, bad)  # type: ignore[arg-type]
        assert wait_for(lambda: client.xlen(settings.dead_letter_stream) == 1, 10) is not None
        [(_, letter)] = client.xrange(settings.dead_letter_stream)
        assert b"rating: Input should be less than or equal to 5" in letter[b"reason"]
        assert json.loads(letter[b"original"])["rating"] == "9.5"
        assert online_values(feast_world, [driver])[driver] == features_of(second)

        # an older event arriving late does not overwrite the newer online value
        emit(4, 20, conv_rate=0.9)
        assert wait_for(lambda: consumer.stats.applied == 3, 10) is not None
        assert online_values(feast_world, [driver])[driver] == features_of(second)
    finally:
        consumer.stop.set()
        thread.join(timeout=30)
    assert consumer.stats.applied == 3 and consumer.stats.dead_lettered == 1

    # offline: the final flush wrote the three rows, which Feast's historical retrieval reads
    rows = offline_rows(feast_world)
    mine = rows[rows["driver_id"] == driver].sort_values("event_timestamp")
    assert len(mine) == 3
    assert {c: str(t) for c, t in mine.dtypes.items()} == fs.OFFLINE_COLUMNS
    store = fs.feature_store(feast_world.settings)
    entity_df = pd.DataFrame(
        {
            "driver_id": [driver, driver],
            "event_timestamp": [
                pd.Timestamp(now - timedelta(seconds=25)),  # after first, before late/second
                pd.Timestamp(now - timedelta(seconds=5)),  # after second
            ],
        }
    )
    history = (
        store.get_historical_features(entity_df=entity_df, features=list(fs.MODEL_FEATURES))
        .to_df()
        .sort_values("event_timestamp")
    )
    assert history["conv_rate"].tolist() == [first.conv_rate, second.conv_rate]
    assert history["rating"].tolist() == [first.rating, second.rating]


# --- kill -9 mid-stream ------------------------------------------------------------------------


def consumer_process(
    world: FeastWorld, stream: str, name: str, log: Path, **env: str
) -> subprocess.Popen[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")},
        **world.env(),
        "MLOPS_STREAM_REDIS_URL": TEST_REDIS_URL,
        "MLOPS_STREAM_NAME": stream,
        "MLOPS_STREAM_CONSUMER_NAME": name,
        "MLOPS_STREAM_BATCH_SIZE": "50",
        "MLOPS_STREAM_BLOCK_MS": "200",
        "MLOPS_STREAM_OFFLINE_FLUSH_ROWS": "150",
        "MLOPS_STREAM_OFFLINE_FLUSH_INTERVAL_S": "1",
        **env,
    }
    with open(log, "a") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "data_pipeline.stream_consumer"],
            env=environment,
            cwd=world.data_dir,
            stdout=subprocess.PIPE,
            stderr=handle,
            text=True,
        )


def counters(client: redis.Redis, stream: str) -> dict[str, int]:
    raw: Any = client.hgetall(f"{stream}:data-pipeline:counters")
    return {k.decode(): int(v) for k, v in raw.items()}


def test_kill_9_mid_stream_loses_nothing_and_applies_nothing_twice(
    feast_world: FeastWorld, stream: str, client: redis.Redis, tmp_path: Path
) -> None:
    drivers = list(range(5001, 5301))  # 300 drivers no other test touches
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    valid = [
        make_event(
            i,
            driver_id=drivers[i % len(drivers)],
            at=start + timedelta(milliseconds=500 * i),
            conv_rate=round((i % 997) / 997, 4),
            event_id=f"kill:{i}",
        )
        for i in range(3600)
    ]
    # every 18th entry re-sends an earlier event, every 18th (offset 9) is malformed
    entries: list[dict[str, str]] = []
    duplicates = malformed = 0
    for i, event in enumerate(valid):
        entries.append(event.encode())
        if i % 18 == 0 and i:
            entries.append(valid[i - 5].encode())
            duplicates += 1
        if i % 18 == 9:
            entries.append({**event.encode(), "event_id": f"bad:{i}", "acc_rate": "1.5"})
            malformed += 1
    total = len(entries)

    def produce() -> None:  # about 600 entries a second, in small batches
        c = redis.Redis.from_url(TEST_REDIS_URL)
        for k in range(0, total, 30):
            with c.pipeline(transaction=False) as pipe:
                for fields in entries[k : k + 30]:
                    pipe.xadd(stream, fields)  # type: ignore[arg-type]
                pipe.execute()
            time.sleep(0.05)
        c.close()

    log = tmp_path / "consumer.log"
    first = consumer_process(feast_world, stream, "first", log)
    producer = threading.Thread(target=produce)
    kills: list[dict[str, int]] = []

    def kill(process: subprocess.Popen[str]) -> None:
        """SIGKILL a consumer mid-stream; note how far the group had got."""
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        kills.append(
            {
                "consumed": counters(client, stream)["consumed"],
                "pending": int(client.xpending(stream, "data-pipeline")["pending"]),
            }
        )  # type: ignore[index]

    try:
        # ready when it has created the group (and the stream with it)
        assert wait_for(lambda: bool(client.exists(stream)), 60, 0.1) is not None, log.read_text()
        producer.start()
        assert wait_for(lambda: counters(client, stream).get("consumed", 0) >= 800, 60, 0.01)
        kill(first)

        # restart under the same name: it resumes its own pending entries
        second = consumer_process(feast_world, stream, "first", log)
        assert wait_for(lambda: counters(client, stream)["consumed"] >= 2400, 90, 0.01)
        kill(second)

        # restart under another name: the dead consumer's entries must be claimed
        third = consumer_process(
            feast_world,
            stream,
            "second",
            log,
            MLOPS_STREAM_CLAIM_MIN_IDLE_MS="500",
            MLOPS_STREAM_CLAIM_INTERVAL_S="1",
        )
        producer.join(timeout=60)
        done = wait_for(
            lambda: (
                counters(client, stream).get("consumed", 0) == total
                and client.xlen(f"{stream}:data-pipeline:offline") == 0
            ),
            120,
            0.2,
        )
        third.send_signal(signal.SIGTERM)
        out, _ = third.communicate(timeout=60)
        assert done is not None, (counters(client, stream), log.read_text()[-3000:])
    finally:
        for process in (first,):
            if process.poll() is None:
                process.kill()
    assert third.returncode == 0, log.read_text()[-3000:]
    summary = json.loads(out)
    print(f"\nkills at {kills}; the last consumer: {summary}")
    assert all(k["consumed"] < total for k in kills)  # both kills were mid-stream

    # counted effects in the broker
    assert counters(client, stream) == {
        "consumed": total,
        "applied": len(valid),
        "duplicates": duplicates,
        "dead_lettered": malformed,
        "trimmed": 0,
    }
    assert client.xlen(f"{stream}:dead") == malformed
    assert int(client.xpending(stream, "data-pipeline")["pending"]) == 0  # type: ignore[index]
    assert summary["claimed"] > 0 or kills[1]["pending"] == 0

    # offline: exactly one row per event
    rows = offline_rows(feast_world)
    rows = rows[rows["driver_id"].isin(drivers)]
    keys = list(zip(rows["driver_id"], rows["event_timestamp"], strict=True))
    assert len(keys) == len(set(keys)) == len(valid)
    expected = {(e.driver_id, pd.Timestamp(e.event_timestamp)) for e in valid}
    assert set(keys) == expected
    by_key = rows.set_index(["driver_id", "event_timestamp"])["conv_rate"]
    assert all(
        by_key[(e.driver_id, pd.Timestamp(e.event_timestamp))] == e.conv_rate for e in valid[::97]
    )

    # online: every driver holds its latest event
    latest = {e.driver_id: e for e in valid}  # events are in time order
    values = online_values(feast_world, drivers)
    assert values == {d: features_of(latest[d]) for d in drivers}
