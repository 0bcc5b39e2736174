"""`./run.sh serving up|status|logs|down` in the local runtime, end to end: the launcher starts
`model-serving serve` under supervisord on its own ports and data folder, next to the platform's
MLflow; the service is live before any model exists and says why it is not ready; a champion
registered afterwards is picked up and served with features from the platform's feature store;
`down` leaves no process behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ms_fixtures import (
    REDIS_URL,
    drop_project_keys,
    register_model,
    unique_name,
    wait_for,
    write_features,
)

from mlops_testing.stack import (
    Stack,
    get_json,
    http_status,
    listening_addresses,
    port_open,
)

pytestmark = pytest.mark.integration


STACK_ENV = {"MLOPS_REDIS_URL": REDIS_URL}


@pytest.fixture(scope="module")
def stack(platform_stack: Stack) -> Iterator[Stack]:
    """The plugin's platform instance with a Feast project of its own; the instance is down
    before the project's keys are deleted."""
    project = unique_name("ms_launch")
    platform_stack.project = project  # type: ignore[attr-defined]
    try:
        yield platform_stack
    finally:
        platform_stack.down()
        drop_project_keys(project)


def test_serving_up_status_logs_down(stack: Stack) -> None:
    mlflow = stack.run("mlflow", "up")
    assert mlflow.returncode == 0, mlflow.stdout[-2000:] + mlflow.stderr[-2000:]
    project: str = stack.project  # type: ignore[attr-defined]
    with stack.env_file.open("a") as env:
        env.write(f"SERVING_POLL_INTERVAL_S=1\nMLOPS_FEAST_PROJECT={project}\n")

    up = stack.run("serving", "up")
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
    base = stack.url("SERVING_PORT")
    assert f"{base}/v1/predict" in up.stdout and "SERVING_API_KEY" in up.stdout
    assert http_status(f"{base}/health/live") == 200
    # up before any model exists: not ready, and it says why
    assert http_status(f"{base}/health/ready") == 503
    key = stack.env_value("SERVING_API_KEY")
    assert len(key) >= 16
    assert http_status(f"{base}/v1/model") == 401

    # the platform's feature store (this instance's data folder and Feast project), applied
    from data_pipeline.feature_store import apply, feature_store
    from data_pipeline.settings import DataPipelineSettings

    data = DataPipelineSettings(
        mlops_data_dir=stack.data_dir,
        mlops_online_store_url=REDIS_URL,
        mlops_feast_project=project,
        mlops_database_url="",
    )
    apply(data)
    write_features(feature_store(data), range(1, 11), datetime.now(UTC))
    register_model(stack.url("MLFLOW_PORT"), "driver_ranking", alias="champion")

    assert wait_for(lambda: http_status(f"{base}/health/ready") == 200, 60, interval=1)
    answer = get_json(
        f"{base}/v1/predict",
        headers={"X-API-Key": key},
        data={"driver_ids": [1, 2, 3], "request_id": "launcher-1"},
    )
    assert answer["model"] == {"name": "driver_ranking", "version": "1", "alias": "champion"}
    assert len(answer["scores"]) == 3

    status = stack.run("serving", "status")
    assert status.returncode == 0, status.stdout
    assert any(line.split()[:2] == ["serving", "healthy"] for line in status.stdout.splitlines())
    addresses = listening_addresses(stack.pids())
    assert f"127.0.0.1:{stack.ports['SERVING_PORT']}" in addresses
    assert not [a for a in addresses if not a.startswith(("127.0.0.1:", "[::1]:"))]

    logs = stack.run("serving", "logs", "--no-follow", "--lines", "200")
    assert logs.returncode == 0
    lines = [json.loads(line) for line in logs.stdout.splitlines() if line.startswith("{")]
    assert any(entry.get("request_id") == "launcher-1" for entry in lines), logs.stdout[-2000:]
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in lines)
    cache = Path(stack.data_dir / "serving" / "model-cache" / "driver_ranking" / "champion.json")
    assert cache.is_file()

    serving_pids = [p for p in stack.pids() if _is_serving(p)]
    assert serving_pids  # tagged with MLOPS_INSTANCE, found by the launcher's own means
    down = stack.run("serving", "down")
    assert down.returncode == 0, down.stderr
    assert wait_for(lambda: not [p for p in stack.pids() if _is_serving(p)], 20, interval=1)
    assert not port_open(stack.ports["SERVING_PORT"])


def _is_serving(pid: int) -> bool:
    try:
        return "model-serving" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="ignore")
    except OSError:
        return False
