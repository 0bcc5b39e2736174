"""The service end to end in-process (FastAPI app with its workers) against the real Redis and a
real MLflow server: the champion's reference found through its run, a normal window and a
drifted window evaluated by Evidently, labels joined for quality, everything on /metrics with
the stable names, the HTML reports, readiness, the alias move, a version without reference,
errors at the HTTP edge."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from mon_fixtures import (
    SettingsFactory,
    Streams,
    Traffic,
    metric_values,
    outcome,
    reference_frame,
    register_with_reference,
    unique,
    wait_for,
)
from sklearn.metrics import roc_auc_score

from mlops_testing.stack import MlflowServer
from monitoring_service.app import create_app

pytestmark = pytest.mark.integration

SHIFT = {"conv_rate": 0.4, "rating": 1.5, "cancel_rate": 0.15}


@pytest.fixture
def model(mlflow_server: MlflowServer, tmp_path: Path) -> str:
    name = unique("mon_model")
    register_with_reference(mlflow_server.url, name, reference_frame(2000), folder=tmp_path)
    return name


@pytest.fixture
def client(
    make_settings: SettingsFactory, mlflow_server: MlflowServer, model: str
) -> Iterator[TestClient]:
    settings = make_settings(
        mlflow_tracking_uri=mlflow_server.url,
        monitoring_model_name=model,
        monitoring_window_size=200,
        monitoring_window_seconds=3600,
        monitoring_label_grace_s=1.0,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def _windows(client: TestClient) -> list[dict[str, Any]]:
    body: dict[str, Any] = client.get("/v1/windows", params={"limit": 50}).json()
    return sorted(body["windows"], key=lambda w: w["window_id"])


def _final(client: TestClient, n: int) -> list[dict[str, Any]] | None:
    windows = [w for w in _windows(client) if w["state"] == "final"]
    return windows if len(windows) >= n else None


def test_two_windows_drift_quality_metrics_and_reports(
    client: TestClient, streams: Streams, model: str
) -> None:
    assert wait_for(lambda: client.get("/health/ready").status_code == 200, timeout=60), client.get(
        "/health/ready"
    ).json()
    ready = client.get("/health/ready").json()["checks"]
    assert ready["reference"]["champion_version"] == "1"
    assert ready["reference"]["reference_rows"] == 2000

    normal = Traffic(model_name=model, seed=1)
    drifted = Traffic(model_name=model, seed=2, shift=SHIFT)
    first = [e for e, _ in normal.predictions(200)]
    second = [e for e, _ in drifted.predictions(200)]
    labels_1 = [Traffic.feedback(e, outcome(e, i), delay_s=0.5) for i, e in enumerate(first)]
    labels_2 = [
        Traffic.feedback(e, outcome(e, i), delay_s=0.5) for i, e in enumerate(second) if i % 2 == 0
    ]
    streams.add([*first, *labels_1, *second, *labels_2])

    windows = wait_for(lambda: _final(client, 2), timeout=90, interval=0.5)
    assert windows, _windows(client)
    w1, w2 = windows[:2]
    assert (w1["predictions"], w1["rows"], w1["close_reason"]) == (200, 1000, "count")
    assert w1["drift"]["dataset_drift"] is False
    assert w1["drift"]["drifted_features"] == 0
    assert w2["drift"]["dataset_drift"] is True
    drifted_features = {n for n, c in w2["drift"]["features"].items() if c["drifted"]}
    assert drifted_features == set(SHIFT)
    assert w2["drift"]["prediction"]["drifted"] is True
    assert w2["drift"]["consecutive_drifted_windows"] == 1
    assert w1["quality"]["labels"]["coverage"] == 1.0
    assert w2["quality"]["labels"]["coverage"] == 0.5
    assert w2["quality"]["labels"]["delay_seconds"]["median"] == pytest.approx(0.5, abs=1e-3)
    # quality = the chosen driver's score against its label, as scikit-learn computes it
    expected = roc_auc_score(
        [f.trip_completed for f in labels_2],
        [
            next(c.score for c in e.candidates if c.driver_id == e.best_driver_id)
            for e in second[::2]
        ],
    )
    assert w2["quality"]["roc_auc"] == pytest.approx(expected)
    assert w2["quality"]["rows"] == 100

    text = client.get("/metrics").text
    v = (("model_version", "1"),)
    drifted_flags = {
        dict(k)["feature"]: val
        for k, val in metric_values(text, "monitoring_feature_drifted").items()
    }
    assert drifted_flags == {
        "conv_rate": 1,
        "acc_rate": 0,
        "avg_daily_trips": 0,
        "rating": 1,
        "cancel_rate": 1,
    }
    assert metric_values(text, "monitoring_dataset_drift")[v] == 1
    assert metric_values(text, "monitoring_drift_share")[v] == pytest.approx(0.6)
    assert metric_values(text, "monitoring_prediction_drifted")[v] == 1
    assert metric_values(text, "monitoring_consecutive_drifted_windows")[v] == 1
    assert metric_values(text, "monitoring_label_coverage")[v] == 0.5
    assert metric_values(text, "monitoring_quality_roc_auc")[v] == pytest.approx(expected)
    for name in ("precision", "recall", "f1", "accuracy"):
        value = metric_values(text, f"monitoring_quality_{name}")[v]
        assert value == pytest.approx(w2["quality"][name]) and 0 <= value <= 1
    assert metric_values(text, "monitoring_reference_rows")[v] == 2000
    assert (
        metric_values(text, "monitoring_windows_total")[
            (("model_version", "1"), ("reason", "count"))
        ]
        == 2
    )
    consumed = metric_values(text, "monitoring_events_consumed_total")
    assert consumed[(("type", "prediction"),)] == 400
    assert consumed[(("type", "feedback"),)] == 300
    delays = metric_values(text, "monitoring_label_delay_seconds_count")
    assert delays[v] == 300
    assert (
        metric_values(text, "monitoring_window_evaluation_seconds_count")[(("stage", "drift"),)]
        == 2
    )
    assert metric_values(text, "monitoring_champion_version")[v] == 1
    assert metric_values(text, "monitoring_reports_stored")[()] == 4
    assert metric_values(text, "monitoring_events_backlog")[(("stream", "prediction"),)] == 0

    listed = client.get("/reports").json()["reports"]
    assert [r["window_id"] for r in listed] == [w2["window_id"], w1["window_id"]]
    assert listed[0]["kinds"] == ["drift", "quality"]
    page = client.get(f"/reports/{w2['window_id']}", headers={"Accept-Encoding": "identity"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "conv_rate" in page.text and "</html>" in page.text.lower()
    quality = client.get(f"/reports/{w2['window_id']}/quality")
    assert quality.status_code == 200 and "RocAuc" in quality.text
    detail = client.get(f"/v1/windows/{w2['window_id']}").json()
    assert detail["reports"] == [
        f"/reports/{w2['window_id']}/drift",
        f"/reports/{w2['window_id']}/quality",
    ]
    assert detail["notes"]["reference"]["version"] == "1"

    # the edge: unknown window, not a number, unknown kind
    assert client.get("/reports/999999").status_code == 404
    assert client.get("/reports/999999").json()["error"] == "not_found"
    assert client.get("/v1/windows/abc").status_code == 422
    assert client.get("/reports/1/other").status_code == 422
    assert client.get("/v1/windows", params={"limit": 0}).status_code == 422


def test_reports_are_served_compressed_to_clients_that_accept_it(
    client: TestClient, streams: Streams, model: str
) -> None:
    streams.add([e for e, _ in Traffic(model_name=model).predictions(200)])
    assert wait_for(lambda: client.get("/reports").json()["reports"], timeout=60)
    [entry] = client.get("/reports").json()["reports"]
    raw = client.get(f"/reports/{entry['window_id']}/drift", headers={"Accept-Encoding": "gzip"})
    # the test client decodes gzip transparently: the header proves the stored file went out
    assert raw.headers["content-encoding"] == "gzip"
    assert "<html" in raw.text.lower()


def test_the_reference_follows_the_alias_and_a_version_without_one(
    client: TestClient,
    streams: Streams,
    model: str,
    mlflow_server: MlflowServer,
    tmp_path: Path,
) -> None:
    assert wait_for(lambda: client.get("/health/ready").status_code == 200, timeout=60)
    shifted = reference_frame(1500, seed=9)
    shifted["conv_rate"] += 0.4
    version = register_with_reference(mlflow_server.url, model, shifted, folder=tmp_path)
    assert version == "2"

    def champion() -> Any:
        checks = client.get("/health/ready").json()["checks"]["reference"]
        return checks.get("champion_version") == "2" and checks.get("reference_rows") == 1500

    assert wait_for(champion, timeout=30)
    # predictions of v2 shifted like its reference: no drift against *its* reference
    streams.add(
        [
            e
            for e, _ in Traffic(
                model_name=model, version="2", seed=4, shift={"conv_rate": 0.4}
            ).predictions(200)
        ]
    )
    # a version registered without reference data: drift skipped with the reason
    bare = register_with_reference(mlflow_server.url, model, None, alias=None, folder=tmp_path)
    events = [e for e, _ in Traffic(model_name=model, version=bare, seed=5).predictions(200)]
    streams.add([*events, *(Traffic.feedback(e, i % 2 == 0, 0.2) for i, e in enumerate(events))])

    def done() -> Any:
        found = {w["model_version"]: w for w in _windows(client) if w["state"] == "final"}
        return found if {"2", bare} <= set(found) else None

    windows = wait_for(done, timeout=90, interval=0.5)
    assert windows, _windows(client)
    assert windows["2"]["drift"]["features"]["conv_rate"]["drifted"] is False
    assert windows["2"]["notes"]["reference"]["version"] == "2"
    assert windows[bare]["drift"] is None
    assert "no reference" in windows[bare]["notes"]["drift_skipped"]
    assert windows[bare]["quality"]["rows"] == 200
    text = client.get("/metrics").text
    assert metric_values(text, "monitoring_champion_version")[(("model_version", "2"),)] == 1
    assert metric_values(text, "monitoring_champion_version")[(("model_version", "1"),)] == 0
    coverage = metric_values(text, "monitoring_label_coverage")
    assert coverage[(("model_version", bare),)] == 1.0
    # v2's window got no label at all: coverage 0, quality undefined (NaN)
    assert coverage[(("model_version", "2"),)] == 0.0
    assert math.isnan(metric_values(text, "monitoring_quality_roc_auc")[(("model_version", "2"),)])
    assert "0 labelled rows" in windows["2"]["quality"]["skipped"]
    loads = metric_values(text, "monitoring_reference_loads_total")
    assert loads[(("outcome", "missing"), ("source", "registry"))] >= 1
    assert MlflowClient(mlflow_server.url, mlflow_server.url).get_model_version(model, bare).run_id


def test_not_ready_while_the_registry_is_unreachable(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(mlflow_tracking_uri="http://127.0.0.1:9")
    with TestClient(create_app(settings)) as client:
        assert client.get("/health/live").text == "alive"
        answer = client.get("/health/ready")
        assert answer.status_code == 503
        reference = answer.json()["checks"]["reference"]
        assert reference["ok"] is False
        assert wait_for(
            lambda: (
                client.get("/health/ready").json()["checks"]["reference"]["registry_reachable"]
                is False
            ),
            timeout=20,
        )
        text = client.get("/metrics").text
        assert metric_values(text, "monitoring_registry_reachable")[()] == 0


def test_no_champion_yet_is_ready(
    make_settings: SettingsFactory, mlflow_server: MlflowServer
) -> None:
    settings = make_settings(
        mlflow_tracking_uri=mlflow_server.url, monitoring_model_name=unique("mon_absent")
    )
    with TestClient(create_app(settings)) as client:
        assert wait_for(lambda: client.get("/health/ready").status_code == 200, timeout=60)
        reference = client.get("/health/ready").json()["checks"]["reference"]
        assert reference["status"] == "no champion yet"
        assert reference["champion_version"] is None
        assert np.isfinite(client.get("/v1/windows").json()["policy"]["window_size"])
