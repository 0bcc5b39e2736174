"""The producer: dirty-scenario entries, rate, bounds, CLI, and surviving a broker restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import redis

from example_project.world.config import Scenario
from mlops_common.events.driver_stats import MalformedEvent, decode
from mlops_testing.redis_server import PrivateRedis, free_port
from stream_emitting.producer import DEFECTS, Producer, corrupt, redact
from stream_emitting.settings import ProducerSettings

CLI = str(Path(sys.executable).parent / "stream-emitting")


def eventually(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def settings(**overrides: object) -> ProducerSettings:
    return ProducerSettings.load(**overrides)


# --- unit: what the producer emits -----------------------------------------------------------


def test_normal_entries_are_valid_events_with_unique_ids() -> None:
    producer = Producer(settings(stream_redis_url="redis://127.0.0.1:1/0", producer_id="p1"))
    entries = producer.make_entries(500)
    events = [decode(e.fields) for e in entries]
    assert {e.kind for e in entries} == {"valid"}
    assert [e.event_id for e in events] == [f"p1:{i}" for i in range(1, 501)]
    assert all(1001 <= e.driver_id <= 2000 for e in events)
    assert len({e.driver_id for e in events}) > 300


def test_dirty_entries_are_malformed_or_duplicates_in_the_configured_shares() -> None:
    producer = Producer(
        settings(
            stream_redis_url="redis://127.0.0.1:1/0",
            scenario=Scenario.DIRTY,
            dirty_rate=0.2,
            duplicate_rate=0.1,
        )
    )
    entries = [e for _ in range(4000) for e in producer.make_entries(1)]
    assert len(entries) == 4000
    seen: dict[str, dict[str, str]] = {}
    kinds = {"valid": 0, "malformed": 0, "duplicate": 0}
    for entry in entries:
        kinds[entry.kind] += 1
        if entry.kind == "malformed":
            with pytest.raises(MalformedEvent):
                decode(entry.fields)
            continue
        event = decode(entry.fields)
        if entry.kind == "duplicate":
            assert seen[event.event_id] == entry.fields  # an earlier event, sent again
        else:
            assert event.event_id not in seen
            seen[event.event_id] = entry.fields
    assert 0.16 < kinds["malformed"] / 4000 < 0.24
    assert 0.05 < kinds["duplicate"] / 4000 < 0.11


@pytest.mark.parametrize("defect", DEFECTS)
def test_every_defect_makes_a_malformed_event(defect: str) -> None:
    producer = Producer(settings(stream_redis_url="redis://127.0.0.1:1/0"))
    rng = np.random.default_rng(0)
    for entry in producer.make_entries(20):
        with pytest.raises(MalformedEvent):
            decode(corrupt(entry.fields, defect, rng))


def test_redact_hides_the_password() -> None:
    assert redact("redis://user:secret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact("redis://:secret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"


# --- integration: real Redis ------------------------------------------------------------------


def run_in_thread(producer: Producer, **bounds: float | int) -> threading.Thread:
    thread = threading.Thread(target=producer.run, kwargs=bounds, daemon=True)
    thread.start()
    return thread


@pytest.mark.integration
@pytest.mark.parametrize("rate", [40.0, 2000.0])
def test_rate_is_held(redis_url: str, stream_name: str, rate: float) -> None:
    producer = Producer(settings(stream_redis_url=redis_url, stream=stream_name, rate=rate))
    started = time.monotonic()
    stats = producer.run(duration=2.5)
    elapsed = time.monotonic() - started
    client = redis.Redis.from_url(redis_url)
    assert client.xlen(stream_name) == stats.written == stats.valid
    achieved = stats.written / elapsed
    assert 0.85 * rate < achieved < 1.1 * rate, (achieved, rate)
    first = client.xrange(stream_name, count=5)
    for _, fields in first:
        decode(fields)
    client.close()


@pytest.mark.integration
def test_cli_stops_after_max_events_with_settings_from_the_environment(
    redis_url: str, stream_name: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "MLOPS_STREAM_REDIS_URL": redis_url,
        "MLOPS_STREAM_NAME": stream_name,
        "MLOPS_STREAM_RATE": "500",
        "MLOPS_STREAM_SCENARIO": "dirty",
        "MLOPS_STREAM_DIRTY_RATE": "0.5",
    }
    result = subprocess.run(
        [CLI, "produce", "--max-events", "120", "--drivers", "1001-1010"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["written"] == 120 and summary["stream"] == stream_name
    assert summary["malformed"] > 20
    client = redis.Redis.from_url(redis_url)
    entries = client.xrange(stream_name)
    assert len(entries) == 120
    malformed = 0
    for _, fields in entries:
        try:
            assert 1001 <= decode(fields).driver_id <= 1010
        except MalformedEvent:
            malformed += 1
    assert malformed == summary["malformed"]
    client.close()


@pytest.mark.integration
def test_cli_emit_validates_unless_raw(redis_url: str, stream_name: str) -> None:
    base = [CLI, "emit", "--redis-url", redis_url, "--stream", stream_name]
    features = [
        "conv_rate=0.5",
        "acc_rate=0.9",
        "avg_daily_trips=10",
        "rating=4.8",
        "cancel_rate=0.05",
    ]
    good = subprocess.run([*base, "driver_id=1001", *features], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["fields"]["driver_id"] == "1001"
    bad = subprocess.run(
        [*base, "driver_id=1001", *features, "rating=7"], capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert "malformed event: rating" in bad.stderr
    raw = subprocess.run(
        [*base, "--raw", "driver_id=1001", *features, "rating=7"], capture_output=True, text=True
    )
    assert raw.returncode == 0, raw.stderr
    client = redis.Redis.from_url(redis_url)
    assert client.xlen(stream_name) == 2
    client.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["produce", "--drivers", "2000-1001"], "driver id range is empty"),
        (["produce", "--drivers", "a-b"], "invalid driver range"),
        (["produce", "--scenario", "chaos"], "invalid choice"),
        (["produce", "--rate", "-1"], "must be positive"),
        (["emit", "novalue"], "expected FIELD=VALUE"),
    ],
    ids=str,
)
def test_cli_bad_arguments_exit_2(args: list[str], message: str) -> None:
    result = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr


def metric(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.integration
def test_producer_survives_a_broker_restart(private_redis: PrivateRedis, tmp_path: Path) -> None:
    """SIGKILL the broker under a running producer, restart it: the producer retries with
    backoff, logs and counts the retries, never exits, and resumes writing."""
    private_redis.start()
    port = free_port()
    stream = "test:se:restart"
    producer = subprocess.Popen(
        [
            CLI,
            "produce",
            "--redis-url",
            private_redis.url,
            "--stream",
            stream,
            "--rate",
            "100",
            "--metrics-port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MLOPS_STREAM_BACKOFF_MAX": "0.5"},
    )
    try:
        client = redis.Redis.from_url(private_redis.url)
        assert eventually(lambda: client.xlen(stream) >= 50, timeout=15)
        client.close()
        private_redis.kill()
        assert eventually(lambda: (metric(port, "stream_producer_retries_total") or 0) >= 3, 15)
        assert metric(port, "stream_producer_connected") == 0.0
        assert producer.poll() is None, "the producer exited while the broker was down"

        private_redis.start()  # same port, empty (nothing persisted)
        client = redis.Redis.from_url(private_redis.url)
        assert eventually(lambda: client.xlen(stream) >= 50, timeout=15)
        for _, fields in client.xrange(stream, count=20):
            decode(fields)
        client.close()
        assert metric(port, "stream_producer_connected") == 1.0
    finally:
        producer.send_signal(signal.SIGTERM)
        out, err = producer.communicate(timeout=20)
    assert producer.returncode == 0, err[-2000:]
    summary = json.loads(out)
    assert summary["retries"] >= 3 and summary["outages"] == 1
    assert summary["written"] >= 100
    assert "broker write failed (ConnectionError" in err
    assert "broker reachable again after" in err


@pytest.mark.integration
def test_producer_without_a_broker_waits_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here
    producer = subprocess.Popen(
        [CLI, "produce", "--redis-url", f"redis://127.0.0.1:{port}/0", "--rate", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.0)
    assert producer.poll() is None
    started = time.monotonic()
    producer.send_signal(signal.SIGTERM)
    out, err = producer.communicate(timeout=20)
    assert producer.returncode == 0, err
    assert time.monotonic() - started < 5
    summary = json.loads(out)
    assert summary["written"] == 0 and summary["retries"] >= 2
    assert summary["dropped_on_stop"] >= 1
    assert "received SIGTERM: stopping" in err
