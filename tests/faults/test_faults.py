"""Fault injection under a steady prediction load (issue 15, item 7; `make faults`).

Each test injects one fault into a running local-runtime platform (its own Redis and PostgreSQL)
while `Load` sends 20 predictions a second (each with its feedback) on loopback, then records:
failed requests (anything but 200, or no answer, from the fault until recovery), recovery time,
events lost or doubled (every answered prediction and accepted feedback is in its Redis stream
exactly once), registered model versions lost or doubled, and orphans (processes of the instance
no supervisord is the ancestor of). Targets: serving ready again within 10 s of a kill -9, every
answer within 100 ms while Redis is stopped (503 is fine), and zero lost, doubled and orphans
after every fault. The table is printed at the end of the run.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest
import redis
from faults_harness import ROWS, Load, PrivatePostgres, Row, orphans, reconcile

from mlops_platform.launcher.runtimes.supervisor import Supervisor
from mlops_testing.redis_server import PrivateRedis
from mlops_testing.stack import Stack, get_json, http_status

pytestmark = [pytest.mark.faults, pytest.mark.timeout(3600)]

MODEL = "driver_ranking"
SERVING_READY_S = 10.0
REDIS_ANSWER_S = 0.1
PAUSE_S = 20.0
SETTLE_S = 5.0


def wait_for(check: Callable[[], bool], timeout: float = 120) -> float:
    """Seconds until `check()` holds (polled every 0.1 s); inf when it never did."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        try:
            if check():
                return time.monotonic() - began
        except OSError:
            pass
        time.sleep(0.1)
    return float("inf")


def model_versions(stack: Stack) -> list[str]:
    url = f"{stack.url('MLFLOW_PORT')}/api/2.0/mlflow/model-versions/search"
    found = get_json(f"{url}?filter=name%3D%27{MODEL}%27&max_results=1000")
    return sorted(v["version"] for v in found.get("model_versions", []))


def supervised(stack: Stack, program: str) -> int:
    states = [s for s in Supervisor(stack.data_dir).processes() if s.name == program]
    return states[0].pid if states and states[0].state == "RUNNING" else 0


def record(
    stack: Stack,
    load: Load,
    backends: tuple[PrivateRedis, PrivatePostgres],
    fault: str,
    began: float,
    recovery: float,
    versions: list[str],
) -> Row:
    """Let the platform settle, then count what the fault cost."""
    time.sleep(SETTLE_S)
    window = load.between(began, began + (recovery if recovery < 1e9 else 60) + 1)
    client = redis.Redis.from_url(backends[0].url)
    lost, doubled = reconcile(client, load)
    after = wait_for(lambda: model_versions(stack) == versions, timeout=30)
    lost_models = 0 if after < 1e9 else len(set(versions) - set(model_versions(stack)))
    doubled_models = 0 if after < 1e9 else len(model_versions(stack)) - len(set(versions))
    daemon = Supervisor(stack.data_dir).daemon_pid()
    row = Row(
        fault,
        sum(1 for a in window if a.status != 200),
        recovery,
        lost + lost_models,
        doubled + max(0, doubled_models),
        len(orphans(str(stack.data_dir), daemon)),
    )
    ROWS.append(row)
    return row


def check(row: Row) -> None:
    for name in ("lost", "doubled", "orphans"):
        if getattr(row, name):
            row.misses.append(f"{name} {getattr(row, name)}")
    assert not row.misses, f"{row.fault}: {row.misses}"


def kill_and_recover(
    stack: Stack, program: str, healthy: Callable[[], bool]
) -> tuple[float, float]:
    pid = supervised(stack, program)
    assert pid, f"{program} is not running"
    began = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    recovery = wait_for(lambda: supervised(stack, program) not in (0, pid) and healthy())
    return began, recovery


# program -> (port setting, health route) that says it is back; the consumer has none
PROBES = {
    "serving": ("SERVING_PORT", "/health/ready"),
    "stream-consumer": ("", ""),
    "monitoring": ("MONITORING_PORT", "/health/live"),
    "mlflow": ("MLFLOW_PORT", "/health"),
}


@pytest.mark.parametrize("program", list(PROBES))
def test_kill_9(
    platform: Stack,
    load: Load,
    backends: tuple[PrivateRedis, PrivatePostgres],
    program: str,
) -> None:
    port, route = PROBES[program]
    versions = model_versions(platform)
    url = f"{platform.url(port)}{route}" if port else ""
    began, recovery = kill_and_recover(
        platform, program, lambda: not url or http_status(url) == 200
    )
    row = record(platform, load, backends, f"kill -9 {program}", began, recovery, versions)
    if program == "serving" and recovery > SERVING_READY_S:
        row.misses.append(f"ready after {recovery:.1f} s > {SERVING_READY_S:.0f} s")
    if recovery == float("inf"):
        row.misses.append("never recovered")
    check(row)


def first_ok_after(load: Load, since: float, timeout: float = 120) -> float:
    return wait_for(lambda: any(a.status == 200 for a in load.between(since, 1e12)), timeout)


def test_redis_stopped_for_20_s(
    platform: Stack, load: Load, backends: tuple[PrivateRedis, PrivatePostgres]
) -> None:
    store = backends[0]
    assert store.process is not None
    versions = model_versions(platform)
    began = time.monotonic()
    os.kill(store.process.pid, signal.SIGSTOP)
    try:
        time.sleep(PAUSE_S)
    finally:
        os.kill(store.process.pid, signal.SIGCONT)
    resumed = time.monotonic()
    recovery = resumed - began + first_ok_after(load, resumed)
    during = load.between(began, resumed - REDIS_ANSWER_S)
    slow = [a for a in during if a.status == 0 or a.seconds > REDIS_ANSWER_S]
    row = record(platform, load, backends, "Redis stopped 20 s", began, recovery, versions)
    if slow:
        worst = max(a.seconds for a in slow)
        row.misses.append(f"{len(slow)}/{len(during)} answers over 100 ms (worst {worst:.1f} s)")
    check(row)


def test_event_sink_full(
    platform: Stack, load: Load, backends: tuple[PrivateRedis, PrivatePostgres]
) -> None:
    client = redis.Redis.from_url(backends[0].url)
    versions = model_versions(platform)
    began = time.monotonic()
    client.config_set("maxmemory", "1")  # every write is refused (OOM), reads still work
    try:
        time.sleep(PAUSE_S)
    finally:
        client.config_set("maxmemory", "0")
    resumed = time.monotonic()
    recovery = resumed - began + first_ok_after(load, resumed)
    check(record(platform, load, backends, "event sink full 20 s", began, recovery, versions))


def test_postgres_restart(
    platform: Stack, load: Load, backends: tuple[PrivateRedis, PrivatePostgres]
) -> None:
    versions = model_versions(platform)
    began = time.monotonic()
    backends[1].restart()
    recovery = wait_for(lambda: model_versions(platform) == versions)
    check(record(platform, load, backends, "PostgreSQL restart", began, recovery, versions))
