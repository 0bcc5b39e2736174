"""Registry-driven lifecycle against a real MLflow server: hot swap under load (promote, then
roll back), registry outages while serving and at start (the local cache)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient
from ms_fixtures import (
    TcpProxy,
    auth,
    metric_value,
    register_hostile_model,
    register_model,
    unique_name,
    wait_for,
)
from ms_harness import Harness, LiveServer, SettingsFactory

from mlops_testing.stack import MlflowServer
from model_serving.settings import ServingSettings

pytestmark = pytest.mark.integration

POLL = 0.5


@pytest.fixture
def registry_proxy(mlflow_server: MlflowServer) -> Iterator[TcpProxy]:
    """The MLflow server behind a proxy the test can take down."""
    port = int(mlflow_server.url.rsplit(":", 1)[1])
    proxy = TcpProxy("127.0.0.1", port)
    proxy.up()
    yield proxy
    proxy.down()


@dataclass(frozen=True)
class ProxiedModel:
    """A model of the test's own (champion: version 1) and settings that reach the registry
    through `registry_proxy` (1 s registry timeout, 0.3 s poll)."""

    name: str
    settings: ServingSettings


@pytest.fixture
def proxied_model(
    own_model: Callable[..., str], make_settings: SettingsFactory, registry_proxy: TcpProxy
) -> ProxiedModel:
    name = own_model()
    settings = make_settings(
        serving_model_name=name,
        mlflow_tracking_uri=f"http://{registry_proxy.url_host}",
        serving_registry_timeout_s=1,
        serving_poll_interval_s=0.3,
    )
    return ProxiedModel(name, settings)


@dataclass
class Load:
    """Threads sending predictions as fast as they can, recording every answer."""

    url: str
    threads: int = 4
    results: list[list[tuple[float, int, str | None]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for n in range(self.threads):
            log: list[tuple[float, int, str | None]] = []
            self.results.append(log)
            worker = threading.Thread(target=self._run, args=(n, log), daemon=True)
            worker.start()
            self._workers.append(worker)

    def _run(self, n: int, log: list[tuple[float, int, str | None]]) -> None:
        with httpx.Client(base_url=self.url, headers=auth(), timeout=10) as client:
            i = 0
            while not self._stop.is_set():
                i += 1
                try:
                    response = client.post(
                        "/v1/predict",
                        json={
                            "request_id": f"load-{n}-{i}",
                            "driver_ids": [1, 2, 3, 4, 5],
                        },
                    )
                    version = (
                        response.json()["model"]["version"]
                        if (response.status_code == 200)
                        else None
                    )
                    log.append((time.monotonic(), response.status_code, version))
                except httpx.HTTPError:
                    log.append((time.monotonic(), 0, None))

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(15)

    def all(self) -> list[tuple[float, int, str | None]]:
        return sorted(entry for log in self.results for entry in log)

    def first_answer_of(self, version: str, after: float) -> float | None:
        for at, status, answered in self.all():
            if at >= after and status == 200 and answered == version:
                return at
        return None


def loaded_seconds(server: LiveServer) -> float:
    model = server.service.manager.state.champion
    return float(model.load_seconds) if model else 0.0


def test_hot_swap_under_load_promote_then_roll_back(
    live: Callable[..., LiveServer],
    make_settings: SettingsFactory,
    own_model: Callable[..., str],
    mlflow_server: MlflowServer,
) -> None:
    name = own_model()
    v2 = register_model(mlflow_server.url, name, seed=3, flip=True)
    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    server = live(make_settings(serving_model_name=name, serving_poll_interval_s=POLL))
    load = Load(server.url)
    load.start()
    try:
        assert wait_for(lambda: len(load.all()) > 50, 20)
        promoted_at = time.monotonic()
        client.set_registered_model_alias(name, "champion", v2)
        assert wait_for(lambda: load.first_answer_of(v2, promoted_at) is not None, 30)
        switched = load.first_answer_of(v2, promoted_at)
        assert switched is not None
        promote_lag = switched - promoted_at
        promote_load = loaded_seconds(server)
        time.sleep(1.0)  # serve the new version for a while under load

        rolled_back_at = time.monotonic()
        client.set_registered_model_alias(name, "champion", "1")
        assert wait_for(lambda: load.first_answer_of("1", rolled_back_at) is not None, 30)
        back = load.first_answer_of("1", rolled_back_at)
        assert back is not None
        rollback_lag = back - rolled_back_at
        rollback_load = loaded_seconds(server)
        time.sleep(0.5)
    finally:
        load.stop()

    answers = load.all()
    print(
        f"hot swap: {len(answers)} requests; promote lag {promote_lag:.2f}s (load "
        f"{promote_load:.2f}s), rollback lag {rollback_lag:.2f}s (load {rollback_load:.2f}s)"
    )
    failures = [a for a in answers if a[1] != 200]
    assert not failures, f"{len(failures)} failed requests of {len(answers)}: {failures[:5]}"
    assert len(answers) > 200
    # each switch: the next poll (at most one interval) plus that version's load and warm-up
    assert promote_lag <= POLL + promote_load + 1.0, (promote_lag, promote_load)
    assert rollback_lag <= POLL + rollback_load + 1.0, (rollback_lag, rollback_load)
    # the rollback reads the cached artifacts: no download
    assert rollback_load < promote_load + 0.5
    # per client, versions only move forward: 1 ... 1, 2 ... 2, 1 ... 1 (no flapping)
    for log in load.results:
        sequence = [v for _, _, v in log]
        changes = [b for a, b in itertools.pairwise(sequence) if a != b]
        assert changes in ([v2, "1"], [v2], []), changes
    text = httpx.get(f"{server.url}/metrics").text
    assert metric_value(text, "serving_model_swaps_total", alias="champion") == 3
    assert (
        metric_value(
            text, "serving_requests_total", route="/v1/predict", status="200", model_version=v2
        )
        > 0
    )


def test_registry_down_keeps_serving_and_says_so(
    harness: Callable[..., Harness],
    proxied_model: ProxiedModel,
    registry_proxy: TcpProxy,
    mlflow_server: MlflowServer,
) -> None:
    name = proxied_model.name
    v2 = register_model(mlflow_server.url, name, seed=4, flip=True)
    api = harness(proxied_model.settings)
    assert api.predict([1, 2]).json()["model"]["version"] == "1"

    registry_proxy.down()
    assert wait_for(lambda: api.service.manager.registry.reachable is False, 10)
    for _ in range(20):
        response = api.predict([1, 2, 3])
        assert response.status_code == 200 and response.json()["model"]["version"] == "1"
    ready = api.client.get("/health/ready")
    assert ready.status_code == 200
    registry = ready.json()["checks"]["registry"]
    assert registry["ok"] is False and registry["reachable"] is False
    assert "unreachable, serving what is loaded" in registry["detail"]
    text = api.client.get("/metrics").text
    assert metric_value(text, "serving_registry_reachable") == 0
    assert metric_value(text, "serving_registry_polls_total", outcome="unreachable") >= 1

    # a promotion made while the service cannot see the registry is followed once it can
    MlflowClient(mlflow_server.url, mlflow_server.url).set_registered_model_alias(
        name, "champion", v2
    )
    time.sleep(1.0)
    assert api.predict([1, 2]).json()["model"]["version"] == "1"
    registry_proxy.up()
    assert wait_for(lambda: api.predict([1, 2]).json()["model"]["version"] == v2, 20)
    assert api.service.manager.registry.reachable is True
    assert metric_value(api.client.get("/metrics").text, "serving_registry_reachable") == 1


def test_unreachable_at_start_starts_from_the_cached_champion(
    harness: Callable[..., Harness], proxied_model: ProxiedModel, registry_proxy: TcpProxy
) -> None:
    settings = proxied_model.settings
    first = harness(settings)
    expected = first.predict([4, 5, 6]).json()
    first.client.__exit__(None, None, None)  # stop the first process

    registry_proxy.down()
    began = time.monotonic()
    second = harness(settings)
    assert time.monotonic() - began < 15
    ready = second.client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert "from cache" in ready.json()["checks"]["model"]["detail"]
    # the watcher asks the registry at once, after the cached champion is served
    assert wait_for(lambda: second.service.manager.registry.reachable is False, 10)
    answer = second.predict([4, 5, 6]).json()
    assert answer["model"]["version"] == "1"
    assert answer["scores"] == expected["scores"]
    [served] = second.client.get("/v1/model", headers=auth()).json()["served"]
    assert served["source"] == "cache"
    text = second.client.get("/metrics").text
    assert (
        metric_value(
            text, "serving_model_loads_total", alias="champion", source="cache", outcome="success"
        )
        == 1
    )
    registry_proxy.up()
    assert wait_for(lambda: second.service.manager.registry.reachable is True, 10)
    assert second.predict([4]).status_code == 200


def test_a_restart_starts_from_the_cached_champion_then_follows_the_registry_at_once(
    harness: Callable[..., Harness],
    make_settings: SettingsFactory,
    own_model: Callable[..., str],
    mlflow_server: MlflowServer,
) -> None:
    """A restart (kill -9 of serving) is ready without a registry round trip or a download:
    the cache's last champion first; the watcher's first poll comes at once (not after
    SERVING_POLL_INTERVAL_S) and follows an alias moved while serving was down."""
    name = own_model()
    settings = make_settings(serving_model_name=name, serving_poll_interval_s=30)
    first = harness(settings)
    assert first.predict([4, 5, 6]).json()["model"]["version"] == "1"
    first.client.__exit__(None, None, None)  # stop the first process
    v2 = register_model(mlflow_server.url, name, seed=4, flip=True)
    MlflowClient(mlflow_server.url, mlflow_server.url).set_registered_model_alias(
        name, "champion", v2
    )

    second = harness(settings)
    text = second.client.get("/metrics").text
    assert (
        metric_value(
            text, "serving_model_loads_total", alias="champion", source="cache", outcome="success"
        )
        == 1
    )
    assert wait_for(lambda: second.predict([4]).json()["model"]["version"] == v2, 20)


def test_unreachable_at_start_without_cache_is_not_ready_until_the_registry_answers(
    harness: Callable[..., Harness], proxied_model: ProxiedModel, registry_proxy: TcpProxy
) -> None:
    registry_proxy.down()
    api = harness(proxied_model.settings)
    live = api.client.get("/health/live")
    assert live.status_code == 200
    ready = api.client.get("/health/ready")
    assert ready.status_code == 503
    assert (
        "registry unreachable and no cached champion" in ready.json()["checks"]["model"]["detail"]
    )
    predict = api.predict([1])
    assert predict.status_code == 503 and predict.json()["error"] == "no_model"
    registry_proxy.up()
    assert wait_for(lambda: api.client.get("/health/ready").status_code == 200, 20)
    assert api.predict([1]).json()["model"]["version"] == "1"


def test_no_champion_yet_is_not_ready_then_follows_the_first_promotion(
    harness: Callable[..., Harness],
    make_settings: SettingsFactory,
    mlflow_server: MlflowServer,
) -> None:
    name = unique_name("ms_model")
    api = harness(make_settings(serving_model_name=name, serving_poll_interval_s=0.3))
    ready = api.client.get("/health/ready")
    assert ready.status_code == 503
    assert "no version has the alias 'champion'" in ready.json()["checks"]["model"]["detail"]
    register_model(mlflow_server.url, name, alias="champion")
    assert wait_for(lambda: api.client.get("/health/ready").status_code == 200, 20)


@pytest.mark.parametrize("kind", ["unknown_feature_service", "pickle"])
def test_a_version_that_cannot_be_served_is_refused_and_the_old_one_kept(
    harness: Callable[..., Harness],
    make_settings: SettingsFactory,
    own_model: Callable[..., str],
    mlflow_server: MlflowServer,
    tmp_path: Path,
    kind: str,
) -> None:
    """A version whose feature service does not exist fails to load; a version in a format
    that runs code on load (pickle) is refused before it is read, and never runs: the champion
    stays."""
    name = own_model()
    marker = tmp_path / "marker"
    if kind == "pickle":
        bad, why = register_hostile_model(mlflow_server.url, name, marker, tmp_path), "pickle"
    else:
        bad = register_model(mlflow_server.url, name, feature_service="no_such_service")
        why = "no_such_service"
    api = harness(make_settings(serving_model_name=name, serving_poll_interval_s=0.3))
    MlflowClient(mlflow_server.url, mlflow_server.url).set_registered_model_alias(
        name, "champion", bad
    )
    assert wait_for(lambda: "champion" in api.service.manager.registry.load_errors, 15)
    assert why in api.service.manager.registry.load_errors["champion"]
    assert not marker.exists()
    assert api.predict([1]).json()["model"]["version"] == "1"
    text = api.client.get("/metrics").text
    assert metric_value(text, "serving_model_loads_total", alias="champion", outcome="failure") >= 1
    refused = metric_value(text, "serving_model_load_refused_total", reason="format")
    assert refused >= 1 if kind == "pickle" else refused == 0
    detail: dict[str, Any] = api.client.get("/v1/model", headers=auth()).json()
    assert why in detail["registry"]["load_errors"]["champion"]
