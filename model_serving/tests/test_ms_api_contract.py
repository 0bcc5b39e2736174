"""The HTTP contract against real services: MLflow (the registry), Redis (online store via a
Feast store, and the event streams)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from ms_fixtures import (
    FEATURES,
    STALE_DRIVERS,
    UNKNOWN_DRIVER,
    auth,
    metric_value,
    wait_for,
)
from ms_harness import Harness, SettingsFactory, Streams

from mlops_common.events import serving as events

pytestmark = pytest.mark.integration


@pytest.fixture
def api(harness: Any, make_settings: SettingsFactory, shared_model: str) -> Harness:
    h: Harness = harness(make_settings(serving_model_name=shared_model))
    return h


def test_predict_ranks_candidates_best_first(api: Harness) -> None:
    response = api.predict([3, 1, 2, 4, 5], request_id="booking-1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_id"] == "booking-1"
    assert response.headers["x-request-id"] == "booking-1"
    scores = body["scores"]
    assert sorted(s["driver_id"] for s in scores) == [1, 2, 3, 4, 5]
    values = [s["score"] for s in scores]
    assert values == sorted(values, reverse=True)
    assert all(0.0 <= v <= 1.0 for v in values)
    assert len(set(values)) > 1  # a real model, not a constant
    assert body["best_driver_id"] == scores[0]["driver_id"]
    assert body["model"] == {
        "name": api.settings.serving_model_name,
        "version": "1",
        "alias": "champion",
    }
    assert body["unknown_driver_ids"] == [] and body["stale_driver_ids"] == []


def test_scores_equal_the_model_on_the_stored_features(api: Harness, feature_store: Any) -> None:
    """The service's score of a driver is the registered model's predict_proba on exactly the
    online features (a wrong column order or a wrong driver would change it)."""
    import mlflow.sklearn

    ids = [10, 11, 12, 13, 14]
    body = api.predict(ids).json()
    online = feature_store.get_online_features(
        features=feature_store.get_feature_service("driver_ranking_v1"),
        entity_rows=[{"driver_id": i} for i in ids],
    ).to_df()
    model = mlflow.sklearn.load_model(f"models:/{api.settings.serving_model_name}/1")
    proba = model.predict_proba(online[list(FEATURES)])[:, 1]
    by_driver = {s["driver_id"]: s["score"] for s in body["scores"]}
    for driver, value in zip(online["driver_id"], proba, strict=True):
        assert by_driver[int(driver)] == pytest.approx(float(value), abs=1e-9)


def test_request_id_is_generated_when_missing(api: Harness) -> None:
    first, second = api.predict([1, 2]), api.predict([1, 2])
    ids = {first.json()["request_id"], second.json()["request_id"]}
    assert len(ids) == 2
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert first.headers["x-request-id"] == first.json()["request_id"]


def test_unknown_and_stale_drivers_are_reported_counted_and_left_out(api: Harness) -> None:
    stale = STALE_DRIVERS[0]
    response = api.predict([1, UNKNOWN_DRIVER, stale, 2])
    assert response.status_code == 200, response.text
    body = response.json()
    assert {s["driver_id"] for s in body["scores"]} == {1, 2}
    assert body["unknown_driver_ids"] == [UNKNOWN_DRIVER]
    assert body["stale_driver_ids"] == [stale]
    text = api.client.get("/metrics").text
    assert (
        metric_value(text, "serving_unscorable_drivers_total", reason="unknown", model_version="1")
        == 1
    )
    assert (
        metric_value(text, "serving_unscorable_drivers_total", reason="stale", model_version="1")
        == 1
    )


def test_no_scorable_candidate_is_a_4xx_that_says_so(api: Harness) -> None:
    response = api.predict([UNKNOWN_DRIVER, STALE_DRIVERS[1]])
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "no_scorable_candidates"
    assert "none of the 2 candidates can be scored" in body["message"]
    assert body["details"] == {
        "unknown_driver_ids": [UNKNOWN_DRIVER],
        "stale_driver_ids": [STALE_DRIVERS[1]],
    }
    text = api.client.get("/metrics").text
    assert metric_value(text, "serving_no_scorable_candidates_total", model_version="1") == 1


def test_prediction_event_is_written_with_features_scores_and_version(
    api: Harness, streams: Streams, feature_store: Any
) -> None:
    body = api.predict([7, 8, UNKNOWN_DRIVER], request_id="booking-event").json()
    key = api.settings.serving_events_prediction_stream
    assert wait_for(lambda: len(streams.entries(key)) == 1, 10)
    [fields] = streams.entries(key)
    event = events.decode(fields)
    assert isinstance(event, events.PredictionEvent)
    assert event.request_id == "booking-event"
    assert event.model.version == "1" and event.model.alias == "champion"
    assert [c.driver_id for c in event.candidates] == [s["driver_id"] for s in body["scores"]]
    assert [c.score for c in event.candidates] == [s["score"] for s in body["scores"]]
    assert event.best_driver_id == body["best_driver_id"]
    assert event.unknown_driver_ids == [UNKNOWN_DRIVER]
    online = feature_store.get_online_features(
        features=list(f"driver_hourly_stats:{f}" for f in FEATURES),
        entity_rows=[{"driver_id": 7}],
    ).to_dict()
    seven = next(c for c in event.candidates if c.driver_id == 7)
    assert seven.features == {f: online[f][0] for f in FEATURES}
    assert event.latency_ms is not None and event.latency_ms > 0


def test_feedback_is_accepted_and_written_with_the_answering_version(
    api: Harness, streams: Streams
) -> None:
    api.predict([1, 2], request_id="booking-fb")
    response = api.client.post(
        "/v1/feedback",
        json={"request_id": "booking-fb", "driver_id": 2, "trip_completed": True},
        headers=auth(),
    )
    assert response.status_code == 202, response.text
    assert response.json()["model"]["version"] == "1"
    key = api.settings.serving_events_feedback_stream
    assert wait_for(lambda: len(streams.entries(key)) == 1, 10)
    [first] = (events.decode(f) for f in streams.entries(key))
    assert isinstance(first, events.FeedbackEvent)
    assert (first.request_id, first.driver_id, first.trip_completed) == ("booking-fb", 2, True)
    assert first.model is not None and first.model.version == "1"
    text = api.client.get("/metrics").text
    assert (
        metric_value(text, "serving_feedback_total", trip_completed="true", model_version="1") == 1
    )


@pytest.mark.parametrize(
    ("request_id", "driver_id", "error"),
    [("never-predicted", 1, "unknown_request"), ("booking-fb2", 3, "not_a_candidate")],
)
def test_feedback_for_an_unserved_request_or_driver_is_refused(
    api: Harness, request_id: str, driver_id: int, error: str
) -> None:
    api.predict([1, 2], request_id="booking-fb2")
    response = api.client.post(
        "/v1/feedback",
        json={"request_id": request_id, "driver_id": driver_id, "trip_completed": False},
        headers=auth(),
    )
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["error"] == error and body["request_id"] == request_id
    assert request_id in body["message"]
    text = api.client.get("/metrics").text
    assert metric_value(text, "serving_feedback_rejected_total", reason=error) == 1


def test_model_endpoint_lists_served_versions_and_aliases(api: Harness) -> None:
    body = api.client.get("/v1/model", headers=auth()).json()
    assert body["name"] == api.settings.serving_model_name
    [served] = body["served"]
    assert served["version"] == "1" and served["alias"] == "champion"
    assert served["flavor"] == "sklearn"
    assert served["scorer"] == "compiled-hgb"  # identical to predict_proba, checked at load
    assert served["feature_service"] == "driver_ranking_v1"
    assert served["input_columns"] == list(FEATURES)
    assert served["feature_reader"] == "redis"
    assert body["registry"]["reachable"] is True
    assert body["registry"]["aliases"] == {"champion": "1"}
    assert body["traffic"]["canary_percent"] == 0 and body["traffic"]["shadow"] is False


def test_health(api: Harness) -> None:
    assert api.client.get("/health/live").json()["status"] == "alive"
    ready = api.client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["model"]["ok"] and "v1" in checks["model"]["detail"]
    assert checks["online_store"]["ok"]
    assert checks["registry"]["reachable"] is True
    assert checks["events"]["enabled"] is True


def test_metrics_cover_requests_latency_model_and_registry(api: Harness) -> None:
    api.predict([1, 2, 3])
    api.client.post("/v1/predict", json={"driver_ids": []}, headers=auth())
    text = api.client.get("/metrics").text
    assert (
        metric_value(
            text, "serving_requests_total", route="/v1/predict", status="200", model_version="1"
        )
        == 1
    )
    assert (
        metric_value(
            text, "serving_requests_total", route="/v1/predict", status="422", model_version="none"
        )
        == 1
    )
    for histogram in (
        "serving_request_duration_seconds",
        "serving_feature_read_duration_seconds",
        "serving_model_duration_seconds",
        "serving_prediction_score",
    ):
        assert metric_value(text, f"{histogram}_count") >= 1, histogram
    assert metric_value(text, "serving_prediction_score_count", model_version="1") == 3
    assert metric_value(text, "serving_model_loads_total", alias="champion", outcome="success") == 1
    assert metric_value(text, "serving_model_info", alias="champion", model_version="1") == 1
    assert metric_value(text, "serving_registry_reachable") == 1
    assert "serving_requests_in_flight" in text
    assert "serving_events_dropped_total" in text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/predict", {"driver_ids": [1]}),
        ("POST", "/v1/feedback", {"request_id": "r", "driver_id": 1, "trip_completed": True}),
        ("GET", "/v1/model", None),
        ("GET", "/v1/experiments", None),
    ],
)
def test_v1_routes_need_the_api_key(api: Harness, method: str, path: str, body: Any) -> None:
    missing = api.client.request(method, path, json=body)
    assert missing.status_code == 401
    assert "X-API-Key" in missing.json()["message"]
    wrong = api.client.request(method, path, json=body, headers=auth("not-the-key"))
    assert wrong.status_code == 403
    assert wrong.json()["error"] == "forbidden"
    if path == "/v1/feedback":
        api.predict([1], request_id="r")
    right = api.client.request(method, path, json=body, headers=auth())
    assert right.status_code in {200, 202}, right.text


def test_health_metrics_and_docs_are_open(api: Harness) -> None:
    for path in ("/health/live", "/health/ready", "/metrics", "/openapi.json", "/docs"):
        assert api.client.get(path).status_code == 200, path


def test_swagger_ui_is_served_from_local_assets(api: Harness) -> None:
    html = api.client.get("/docs").text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert assets and all(a.startswith("/docs/static/") for a in assets), assets
    assert "cdn" not in html.lower() and "http" not in "".join(assets)
    for asset in assets:
        response = api.client.get(asset)
        assert response.status_code == 200, asset
    bundle = api.client.get("/docs/static/swagger-ui-bundle.js")
    assert len(bundle.content) > 500_000  # the real bundle, with OpenAPI 3.1 support
    assert b"3.1.0" in bundle.content


def test_openapi_documents_examples_and_the_api_key(api: Harness) -> None:
    spec = api.client.get("/openapi.json").json()
    predict = spec["paths"]["/v1/predict"]["post"]
    examples = predict["requestBody"]["content"]["application/json"]["examples"]
    assert {"three candidates", "no request id"} <= set(examples)
    assert {"200", "401", "403", "409", "415", "422", "503"} <= set(predict["responses"])
    schemes = spec["components"]["securitySchemes"]
    [scheme] = schemes.values()
    assert scheme == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": scheme["description"],
    }
    assert predict["security"]
    request = spec["components"]["schemas"]["PredictRequest"]
    assert request["properties"]["driver_ids"]["maxItems"] == 200
    assert request["examples"]
    feedback = spec["paths"]["/v1/feedback"]["post"]
    assert "202" in feedback["responses"]
    assert spec["components"]["schemas"]["FeedbackRequest"]["examples"]
    for path in ("/health/live", "/health/ready", "/metrics"):
        assert "security" not in spec["paths"][path]["get"], path


def test_online_store_down_is_a_fast_503_and_not_ready(
    harness: Any,
    make_settings: SettingsFactory,
    shared_model: str,
    tmp_path: Any,
) -> None:
    from urllib.parse import urlsplit

    from ms_fixtures import REDIS_URL, TcpProxy, build_store, drop_project_keys, unique_name

    parts = urlsplit(REDIS_URL)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    proxy.up()
    project = unique_name("ms_down")
    db = (parts.path or "/0").strip("/") or "0"
    store = build_store(tmp_path / "feast", project, redis_url=f"redis://{proxy.url_host}/{db}")
    try:
        from datetime import UTC, datetime

        from ms_fixtures import write_features

        write_features(store, [1, 2], datetime.now(UTC))
        api: Harness = harness(make_settings(serving_model_name=shared_model), store)
        assert api.predict([1, 2]).status_code == 200
        proxy.down()
        began = time.perf_counter()
        response = api.predict([1, 2])
        assert time.perf_counter() - began < 2.0
        assert response.status_code == 503
        assert response.json()["error"] == "online_store_unavailable"
        ready = api.client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["online_store"]["ok"] is False
        proxy.up()
        assert wait_for(lambda: api.predict([1, 2]).status_code == 200, 10)
    finally:
        proxy.down()
        drop_project_keys(project)
