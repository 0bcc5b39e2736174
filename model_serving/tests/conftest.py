"""Fixtures of the serving tests: a real MLflow server, a Feast store on the real Redis, models
registered in that server, the app (in-process and on a real uvicorn port).

Everything a test creates has a name of its own (Feast project, registered model, stream keys)
and is deleted afterwards; nothing else on the Redis or in MLflow is touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from ms_fixtures import (
    API_KEY,
    FRESH_DRIVERS,
    REDIS_URL,
    STALE_DRIVERS,
    build_store,
    drop_project_keys,
    register_model,
    unique_name,
    write_features,
)
from ms_harness import Harness, LiveServer, SettingsFactory, Streams, start_live
from threadpoolctl import threadpool_limits

from mlops_testing.plugin import cleaned_up, isolate_environment
from mlops_testing.stack import MlflowServer
from model_serving.app import create_app
from model_serving.settings import ServingSettings


def pytest_configure(config: pytest.Config) -> None:
    # the service and the tests score plain matrices in signature order on purpose
    config.addinivalue_line(
        "filterwarnings", "ignore:X does not have valid feature names:UserWarning"
    )


@pytest.fixture(scope="session", autouse=True)
def _one_openmp_thread() -> Iterator[None]:
    """Fitting and scoring HistGradientBoosting with OpenMP's default thread count collapses
    on a small machine that is busy with other work (as the service does: OMP_NUM_THREADS=1)."""
    with threadpool_limits(1):
        yield


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's or CI's settings (SERVING_*, MLOPS_*, MLFLOW_*, .env) out."""
    isolate_environment(monkeypatch, tmp_path, ("MLOPS_", "MLFLOW_", "SERVING_"))


@pytest.fixture(scope="session")
def feature_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Drivers 1-300 fresh, 901-905 four hours old (the view's TTL is three hours)."""
    project = unique_name("ms_test")
    store = build_store(tmp_path_factory.mktemp("feast"), project)
    try:
        now = datetime.now(UTC)
        write_features(store, FRESH_DRIVERS, now, seed=1)
        write_features(store, STALE_DRIVERS, now - timedelta(hours=4), seed=2)
        yield store
    finally:
        drop_project_keys(project)


@pytest.fixture(scope="session")
def shared_model(mlflow_server: MlflowServer) -> str:
    """A registered model whose champion never moves (contract tests share it)."""
    name = unique_name("ms_shared")
    register_model(mlflow_server.url, name, seed=0, alias="champion")
    register_model(mlflow_server.url, name, seed=1, flip=True, alias="challenger")
    return name


@pytest.fixture
def streams(redis_client: redis.Redis) -> Iterator[Streams]:
    yield from cleaned_up(Streams(redis_client))


@pytest.fixture
def make_settings(tmp_path: Path, mlflow_server: MlflowServer, streams: Streams) -> SettingsFactory:
    def factory(**overrides: Any) -> ServingSettings:
        predictions, feedback = streams.new()
        values: dict[str, Any] = {
            "mlops_data_dir": tmp_path / "data",
            "mlflow_tracking_uri": mlflow_server.url,
            "serving_api_key": API_KEY,
            "serving_events_redis_url": REDIS_URL,
            "serving_events_prediction_stream": predictions,
            "serving_events_feedback_stream": feedback,
            "serving_poll_interval_s": 0.5,
            "serving_access_log": False,
            # a loaded CI machine can take longer than the 80 ms deadline for a healthy read;
            # test_ms_slow_store checks the deadline itself
            "serving_feature_read_timeout_s": 2.0,
        }
        values.update(overrides)
        return ServingSettings(**values)

    return factory


@pytest.fixture
def harness(feature_store: Any, streams: Streams) -> Iterator[Callable[[ServingSettings], Harness]]:
    """Factory: start an app for the given settings (the test's Feast store injected). Depends
    on ``streams`` so that the apps stop (and flush their events) before the keys are deleted."""
    started: list[TestClient] = []

    def start(settings: ServingSettings, store: Any = feature_store) -> Harness:
        app = create_app(settings, store_factory=lambda: store)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        started.append(client)
        return Harness(app, client)

    yield start
    for client in reversed(started):
        client.__exit__(None, None, None)


@pytest.fixture
def live(feature_store: Any, streams: Streams) -> Iterator[Callable[[ServingSettings], LiveServer]]:
    servers: list[LiveServer] = []

    def start(settings: ServingSettings, store: Any = feature_store) -> LiveServer:
        server = start_live(create_app(settings, store_factory=lambda: store))
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def own_model(mlflow_server: MlflowServer) -> Callable[..., str]:
    """Factory: a registered model of the test's own (name) with a champion version."""

    def make(**kwargs: Any) -> str:
        name = unique_name("ms_model")
        register_model(mlflow_server.url, name, seed=0, alias="champion", **kwargs)
        return name

    return make
