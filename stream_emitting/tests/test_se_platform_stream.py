"""`./run.sh stream up|status|logs|down` in the local runtime: the producer and the consumer as
supervised processes on the platform's own redis-server, events reaching the Feast online store,
a consumer killed with SIGKILL restarted by the supervisor and resuming, nothing left behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from mlops_testing.stack import Stack, eventually, free_ports, port_open

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "stream-emitting")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    producer_port, consumer_port = free_ports(2)
    instance = Stack(
        tmp_path_factory.mktemp("platform"),
        extra_env={
            "STREAM_PRODUCER_METRICS_PORT": str(producer_port),
            "STREAM_CONSUMER_METRICS_PORT": str(consumer_port),
            "MLOPS_STREAM_RATE": "40",
        },
    )
    try:
        feast = instance.run("feast", "up")
        assert feast.returncode == 0, feast.stdout[-2000:] + feast.stderr[-2000:]
        instance.first_up = instance.run("stream", "up")  # type: ignore[attr-defined]
        yield instance
    finally:
        instance.down()


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def broker(stack: Stack) -> redis.Redis:
    return redis.Redis.from_url(f"redis://127.0.0.1:{stack.ports['REDIS_PORT']}/0")


def port(stack: Stack, key: str) -> int:
    return int(stack.extra_env[key])


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def program_pid(stack: Stack, program: str) -> int | None:
    """The pid supervisord reports for a running program of the stream service."""
    status = stack.run("stream", "status").stdout
    match = re.search(rf"process {program}\s+RUNNING\s+pid (\d+),", status)
    return int(match.group(1)) if match else None


def test_up_starts_producer_and_consumer_healthy(stack: Stack) -> None:
    result = stack.first_up  # type: ignore[attr-defined]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "* stream: starting" in result.stdout
    assert f"http://127.0.0.1:{port(stack, 'STREAM_CONSUMER_METRICS_PORT')}/metrics" in (
        result.stdout
    )
    status = stack.run("stream", "status")
    assert status.returncode == 0, status.stdout
    lines = status.stdout.splitlines()
    assert any(line.split()[:2] == ["stream", "healthy"] for line in lines), status.stdout
    for program in ("stream-producer", "stream-consumer"):
        assert any(program in line and "RUNNING" in line for line in lines), status.stdout
    assert "stream-group" in status.stdout
    targets = json.loads((stack.data_dir / "prom-graf" / "targets" / "stream.json").read_text())
    assert sorted(targets[0]["targets"]) == sorted(
        f"127.0.0.1:{port(stack, k)}"
        for k in ("STREAM_PRODUCER_METRICS_PORT", "STREAM_CONSUMER_METRICS_PORT")
    )


def test_events_flow_to_the_online_store(stack: Stack) -> None:
    from data_pipeline import feature_store as fs
    from data_pipeline.settings import DataPipelineSettings

    consumer_port = port(stack, "STREAM_CONSUMER_METRICS_PORT")
    applied = 'stream_consumer_events_total{outcome="applied"}'
    assert eventually(lambda: metrics(consumer_port).get(applied, 0) >= 20, timeout=60)
    assert (
        metrics(port(stack, "STREAM_PRODUCER_METRICS_PORT"))[
            'stream_producer_events_total{kind="valid"}'
        ]
        >= 20
    )

    # an operator's event for a driver the producer does not report on
    url = f"redis://127.0.0.1:{stack.ports['REDIS_PORT']}/0"
    emitted = subprocess.run(
        [
            CLI,
            "emit",
            "--redis-url",
            url,
            "driver_id=4242",
            "conv_rate=0.0123",
            "acc_rate=0.5",
            "avg_daily_trips=3",
            "rating=2.5",
            "cancel_rate=0.4",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert emitted.returncode == 0, emitted.stderr
    settings = DataPipelineSettings(
        mlops_data_dir=stack.data_dir,
        mlops_database_url="",
        mlops_online_store_url=url,
        mlops_redis_url="",
    )
    store = fs.feature_store(settings)

    def online() -> dict[str, Any]:
        answer: dict[str, Any] = store.get_online_features(
            features=list(fs.MODEL_FEATURES), entity_rows=[{"driver_id": 4242}]
        ).to_dict()
        return answer

    assert eventually(lambda: online()["conv_rate"] == [0.0123], timeout=15, interval=0.2)
    assert online()["avg_daily_trips"] == [3]


def test_a_killed_consumer_is_restarted_and_resumes(stack: Stack) -> None:
    client = broker(stack)
    counters_key = "mlops:driver_stats:data-pipeline:counters"
    pid = program_pid(stack, "stream-consumer")
    assert pid is not None
    before = int(client.hget(counters_key, "consumed") or 0)  # type: ignore[arg-type]
    os.kill(pid, signal.SIGKILL)
    assert eventually(
        lambda: (program_pid(stack, "stream-consumer") or pid) != pid, timeout=30, interval=0.5
    )
    assert eventually(
        lambda: int(client.hget(counters_key, "consumed") or 0) > before + 40,  # type: ignore[arg-type]
        timeout=60,
        interval=0.5,
    )
    raw: Any = client.hgetall(counters_key)
    counts = {k.decode(): int(v) for k, v in raw.items()}
    assert counts["consumed"] == (
        counts["applied"] + counts["duplicates"] + counts["dead_lettered"] + counts["trimmed"]
    )
    assert eventually(lambda: stack.run("stream", "status").returncode == 0, timeout=60)
    client.close()


def test_logs_show_both_programs(stack: Stack) -> None:
    result = stack.run("stream", "logs", "--no-follow", "--lines", "400")
    assert result.returncode == 0
    assert "stream_emitting.producer: producing to mlops:driver_stats" in result.stdout
    assert "data_pipeline.stream_consumer: consuming mlops:driver_stats" in result.stdout


def test_down_stops_both_and_leaves_nothing(stack: Stack) -> None:
    assert stack.run("stream", "down").returncode == 0
    assert eventually(
        lambda: (
            program_pid(stack, "stream-consumer") is None
            and program_pid(stack, "stream-producer") is None
        ),
        timeout=40,
    )
    for key in ("STREAM_PRODUCER_METRICS_PORT", "STREAM_CONSUMER_METRICS_PORT"):
        assert not port_open(port(stack, key))
    assert [pid for pid in stack.pids() if b"stream-emitting" in cmdline(pid)] == []
    assert [pid for pid in stack.pids() if b"data-pipeline" in cmdline(pid)] == []
    status = stack.run("stream", "status")
    assert status.returncode == 1
    assert not (stack.data_dir / "prom-graf" / "targets" / "stream.json").exists()
    # the consumer stopped cleanly: nothing left unacknowledged
    client = broker(stack)
    pending: Any = client.xpending("mlops:driver_stats", "data-pipeline")
    assert pending["pending"] == 0
    client.close()
