"""The local runtime end to end: up on non-default ports, health, idempotent up, status, logs,
down with no orphans, down --volumes. Starts real processes (supervisord, MLflow, Airflow,
Redis, Prometheus, Alertmanager) on loopback; about 2 minutes."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from mlops_platform.launcher.runtimes.supervisor import Supervisor
from mlops_testing.stack import (
    Stack,
    airflow_token,
    eventually,
    get_json,
    http_status,
    listening_addresses,
    port_open,
)

pytestmark = pytest.mark.integration


def supervised_pids(stack: Stack) -> dict[str, int]:
    """supervisord's pid and each program's, as the launcher's own Supervisor sees them. Not
    every process of the instance: Airflow forks and reaps workers of its own."""
    supervisor = Supervisor(stack.data_dir)
    pids = {p.name: p.pid for p in supervisor.processes()}
    assert pids, "no supervised program"
    pids["supervisord"] = supervisor.daemon_pid() or 0
    return pids


@pytest.fixture(scope="module")
def first_up(platform_stack: Stack) -> subprocess.CompletedProcess[str]:
    """The first ``all up`` of the plugin's platform instance."""
    return platform_stack.run("all", "up")


@pytest.fixture(scope="module")
def stack(platform_stack: Stack, first_up: subprocess.CompletedProcess[str]) -> Stack:
    """The platform instance, once up."""
    return platform_stack


def test_first_up_succeeds_and_prints_urls_and_credentials(
    stack: Stack, first_up: subprocess.CompletedProcess[str]
) -> None:
    result = first_up
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "wrote" in result.stdout and "fresh secrets" in result.stdout
    for key in ("AIRFLOW_PORT", "MLFLOW_PORT", "PROMETHEUS_PORT", "ALERTMANAGER_PORT"):
        assert stack.url(key) in result.stdout
    assert "AIRFLOW_ADMIN_PASSWORD" in result.stdout


def test_services_answer_health_checks(stack: Stack) -> None:
    health = get_json(f"{stack.url('AIRFLOW_PORT')}/api/v2/monitor/health")
    assert {name: part["status"] for name, part in health.items()} == {
        "metadatabase": "healthy",
        "scheduler": "healthy",
        "triggerer": "healthy",
        "dag_processor": "healthy",
    }
    for key, path in (
        ("MLFLOW_PORT", "/health"),
        ("PROMETHEUS_PORT", "/-/ready"),
        ("ALERTMANAGER_PORT", "/-/ready"),
    ):
        assert http_status(stack.url(key) + path) == 200, key


def test_airflow_api_takes_the_generated_password_only(stack: Stack) -> None:
    password = stack.env_value("AIRFLOW_ADMIN_PASSWORD")
    token = airflow_token(stack, password)
    dags = get_json(
        f"{stack.url('AIRFLOW_PORT')}/api/v2/dags", headers={"Authorization": f"Bearer {token}"}
    )
    assert "dags" in dags and "total_entries" in dags
    assert (
        http_status(
            f"{stack.url('AIRFLOW_PORT')}/auth/token",
            data={"username": "admin", "password": "admin"},
        )
        == 401
    )
    assert http_status(f"{stack.url('AIRFLOW_PORT')}/api/v2/dags") == 401


def test_every_listener_is_on_loopback(stack: Stack) -> None:
    addresses = listening_addresses(stack.pids())
    assert addresses, "no listening sockets found for the platform's processes"
    public = [a for a in addresses if not a.startswith(("127.0.0.1:", "[::1]:"))]
    assert public == []


def test_prometheus_scrapes_the_platform(stack: Stack) -> None:
    def healthy_jobs() -> set[str]:
        answer = get_json(f"{stack.url('PROMETHEUS_PORT')}/api/v1/targets")
        return {t["labels"]["job"] for t in answer["data"]["activeTargets"] if t["health"] == "up"}

    jobs = eventually(
        lambda: (
            {"prometheus", "alertmanager", "mlflow", "airflow"} <= healthy_jobs() and healthy_jobs()
        ),
        timeout=60,
        interval=3,
    )
    assert jobs and {"prometheus", "alertmanager", "mlflow", "airflow"} <= jobs


def test_second_up_is_a_fast_no_op(stack: Stack) -> None:
    before_pids = supervised_pids(stack)
    env_before = stack.env_file.read_text()
    started = time.monotonic()
    result = stack.run("all", "up")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 30
    for service in ("feast", "mlflow", "prom-graf", "airflow"):
        assert f"* {service}: already up" in result.stdout
    assert supervised_pids(stack) == before_pids  # nothing restarted
    assert stack.env_file.read_text() == env_before


def test_status_reports_every_service_healthy(stack: Stack) -> None:
    result = stack.run("all", "status")
    assert result.returncode == 0, result.stdout
    for service in ("feast", "mlflow", "prom-graf", "airflow"):
        assert any(
            line.split()[:2] == [service, "healthy"] for line in result.stdout.splitlines()
        ), result.stdout
    assert "MiB PSS" in result.stdout


def test_logs_prints_the_service_log(stack: Stack) -> None:
    result = stack.run("mlflow", "logs", "--no-follow", "--lines", "50")
    assert result.returncode == 0
    assert result.stdout.strip()


def test_status_fails_when_a_service_is_down(stack: Stack) -> None:
    assert stack.run("mlflow", "down").returncode == 0
    result = stack.run("all", "status")
    assert result.returncode == 1
    assert any(line.split()[:2] == ["mlflow", "UNHEALTHY"] for line in result.stdout.splitlines())
    assert stack.run("mlflow", "up").returncode == 0


def test_down_leaves_no_process_and_volumes_removes_the_data(stack: Stack) -> None:
    assert stack.pids()
    result = stack.run("all", "down")
    assert result.returncode == 0, result.stderr
    leftover = eventually(lambda: not stack.pids(), timeout=15) or stack.pids()
    assert leftover is True, f"processes left behind: {leftover}"
    assert not any(port_open(port) for port in stack.ports.values())
    assert stack.data_dir.exists()
    assert stack.run("all", "down", "--volumes").returncode == 0
    assert not stack.data_dir.exists()
    status = stack.run("all", "status")
    assert status.returncode == 1 and "UNHEALTHY" in status.stdout
    assert not stack.data_dir.exists(), "status must not create state"


def test_up_after_volumes_starts_clean(stack: Stack) -> None:
    result = stack.run("mlflow", "up")
    assert result.returncode == 0, result.stderr
    assert "* mlflow: starting" in result.stdout
    assert Path(stack.data_dir / "mlflow" / "mlflow.db").exists()
