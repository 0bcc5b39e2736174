"""Experiments through the admin API: created, started, stopped, listed; each request routed to
its arm's model (sticky per request id), the events carry experiment and arm; bad input is a
4xx that leaves the running experiment untouched. Real MLflow, real Redis, the experiment store
on SQLite in the test's data folder (its PostgreSQL side is tested in common/tests)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from ms_fixtures import metric_value, wait_for
from ms_harness import Harness, SettingsFactory, Streams, auth

from mlops_common.events import serving as events
from model_serving.cli import main

pytestmark = pytest.mark.integration

AB = {
    "name": "ab1",
    "arms": [
        {"name": "control", "alias": "champion", "weight": 0.5},
        {"name": "treatment", "alias": "challenger", "weight": 0.5},
    ],
}


def post(api: Harness, path: str, body: Any) -> Any:
    return api.client.post(path, json=body, headers=auth())


def test_an_ab_test_routes_each_request_to_its_arm_and_records_it(
    harness: Any, make_settings: SettingsFactory, shared_model: str, streams: Streams
) -> None:
    api: Harness = harness(make_settings(serving_model_name=shared_model))
    created = post(api, "/v1/experiments", AB)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "created"
    started = post(api, "/v1/experiments/start", {"name": "ab1"})
    assert started.status_code == 200, started.text
    versions = {}
    for i in range(400):
        answer = api.predict([1, 2, 3], request_id=f"ab-{i}").json()
        versions[f"ab-{i}"] = answer["model"]["version"]
    counts = Counter(versions.values())
    assert abs(counts["2"] / 400 - 0.5) < 0.1, counts
    for rid in list(versions)[:50]:  # sticky
        assert api.predict([4, 5], request_id=rid).json()["model"]["version"] == versions[rid]
    treated = next(r for r, v in versions.items() if v == "2")
    best = api.predict([1, 2, 3], request_id=treated).json()["best_driver_id"]
    feedback = {"request_id": treated, "driver_id": best, "trip_completed": True}
    assert api.client.post("/v1/feedback", json=feedback, headers=auth()).status_code == 202

    key = api.settings.serving_events_prediction_stream
    assert wait_for(lambda: len(streams.entries(key)) == 451, 10)
    recorded = [events.decode(f) for f in streams.entries(key)]
    assert all(isinstance(e, events.PredictionEvent) for e in recorded)
    arms = {e.request_id: e.experiment.arm for e in recorded if e.experiment is not None}
    assert len(arms) == 400
    assert all((arms[r] == "treatment") == (v == "2") for r, v in versions.items())
    fkey = api.settings.serving_events_feedback_stream
    assert wait_for(lambda: len(streams.entries(fkey)) == 1, 10)
    label = events.decode(streams.entries(fkey)[0])
    assert label.experiment is not None and label.experiment.arm == "treatment"
    metrics = api.client.get("/metrics").text
    assert (
        metric_value(metrics, "serving_experiment_allocation", experiment="ab1", arm="control")
        == 0.5
    )
    assert metric_value(metrics, "serving_experiment_active") == 1

    stopped = post(api, "/v1/experiments/stop", {"name": "ab1"})
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert {
        api.predict([1], request_id=f"after-{i}").json()["model"]["version"] for i in range(30)
    } == {"1"}
    listed = api.client.get("/v1/experiments", headers=auth()).json()
    assert [(e["name"], e["status"]) for e in listed] == [("ab1", "stopped")]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {**AB, "name": "bad-sum", "arms": [{**AB["arms"][0], "weight": 0.7}, AB["arms"][1]]},
            422,
            "sum to 1",
        ),
        (
            {
                **AB,
                "name": "bad-version",
                "arms": [AB["arms"][0], {"name": "t", "version": "999", "weight": 0.5}],
            },
            422,
            "no version 999",
        ),
        (
            {
                **AB,
                "name": "bad-alias",
                "arms": [AB["arms"][0], {"name": "t", "alias": "nope", "weight": 0.5}],
            },
            422,
            "no alias 'nope'",
        ),
        ({**AB, "name": "ab1"}, 409, "exists"),
    ],
)
def test_bad_experiments_are_refused_and_the_running_one_is_untouched(
    harness: Any,
    make_settings: SettingsFactory,
    shared_model: str,
    body: Any,
    status: int,
    message: str,
) -> None:
    api: Harness = harness(make_settings(serving_model_name=shared_model))
    assert post(api, "/v1/experiments", AB).status_code == 201
    assert post(api, "/v1/experiments/start", {"name": "ab1"}).status_code == 200
    refused = post(api, "/v1/experiments", body)
    assert refused.status_code == status, refused.text
    assert message in refused.json()["message"]
    assert post(api, "/v1/experiments", {**AB, "name": "ab2"}).status_code == 201
    second = post(api, "/v1/experiments/start", {"name": "ab2"})
    assert second.status_code == 409 and "already running" in second.json()["message"]
    assert post(api, "/v1/experiments/stop", {"name": "ab2"}).status_code == 409
    assert post(api, "/v1/experiments/start", {"name": "nope"}).status_code == 404
    running = api.service.experiments.active
    assert running is not None and running.name == "ab1"
    predict_only = api.client.get("/v1/experiments", headers={"X-API-Key": "wrong"})
    assert predict_only.status_code in (401, 403)


def test_the_cli_creates_starts_lists_and_refuses_bad_input(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mlflow_server: Any,
    shared_model: str,
) -> None:
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.setenv("SERVING_MODEL_NAME", shared_model)
    spec = tmp_path / "ab.json"
    spec.write_text(json.dumps(AB))
    assert main(["experiments", "create", str(spec)]) == 0
    assert main(["experiments", "start", "ab1"]) == 0
    capsys.readouterr()
    assert main(["experiments", "list"]) == 0
    listed = capsys.readouterr().out
    assert "ab1" in listed and "running" in listed and "control=0.500" in listed
    missing = {
        **AB,
        "name": "ab2",
        "arms": [AB["arms"][0], {"name": "t", "version": "42", "weight": 0.5}],
    }
    spec.write_text(json.dumps(missing))
    assert main(["experiments", "create", str(spec)]) == 1
    assert "no version 42" in capsys.readouterr().err
    spec.write_text(json.dumps({**AB, "name": "ab3"}))
    assert main(["experiments", "create", str(spec)]) == 0
    assert main(["experiments", "start", "ab3"]) == 1
    assert "already running" in capsys.readouterr().err
