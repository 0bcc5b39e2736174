"""Canary (a sticky share of requests answered by the challenger) and shadow scoring (the
challenger scores every champion request off the request path; the event records both)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import mlflow.sklearn
import numpy as np
import pytest
from ms_fixtures import FEATURES, metric_value, wait_for
from ms_harness import Harness, SettingsFactory, Streams

from mlops_common.events import serving as events
from model_serving.predictor import canary_bucket

pytestmark = pytest.mark.integration


def test_canary_bucket_is_stable_and_uniform() -> None:
    assert canary_bucket("booking-1") == canary_bucket("booking-1")
    buckets = [canary_bucket(f"r-{i}") for i in range(20_000)]
    assert min(buckets) >= 0 and max(buckets) < 10_000
    share = sum(b < 2_500 for b in buckets) / len(buckets)
    assert abs(share - 0.25) < 0.015


def test_canary_share_is_within_5_points_and_sticky(
    harness: Any, make_settings: SettingsFactory, shared_model: str
) -> None:
    api: Harness = harness(
        make_settings(serving_model_name=shared_model, serving_canary_percent=30)
    )
    assert api.service.manager.state.challenger is not None
    answered: dict[str, str] = {}
    for i in range(2000):
        response = api.predict([1, 2, 3], request_id=f"canary-{i}")
        assert response.status_code == 200, response.text
        model = response.json()["model"]
        answered[f"canary-{i}"] = model["version"]
        assert model["alias"] == ("challenger" if model["version"] == "2" else "champion")
    counts = Counter(answered.values())
    share = counts["2"] / 2000
    assert abs(share - 0.30) <= 0.05, counts
    for request_id in list(answered)[:100]:  # sticky: the same id, the same model
        again = api.predict([4, 5], request_id=request_id).json()["model"]["version"]
        assert again == answered[request_id]
    text = api.client.get("/metrics").text
    assert metric_value(
        text, "serving_predictions_total", model_version="2", alias="challenger"
    ) == counts["2"] + sum(1 for r in list(answered)[:100] if answered[r] == "2")
    assert (
        metric_value(text, "serving_requests_total", route="/v1/predict", model_version="2")
        >= counts["2"]
    )


def test_without_a_challenger_alias_all_traffic_goes_to_the_champion(
    harness: Any, make_settings: SettingsFactory, own_model: Any
) -> None:
    api: Harness = harness(make_settings(serving_model_name=own_model(), serving_canary_percent=50))
    versions = {api.predict([1], request_id=f"c-{i}").json()["model"]["version"] for i in range(50)}
    assert versions == {"1"}


def test_shadow_scores_every_request_with_the_challenger_and_records_both(
    harness: Any,
    make_settings: SettingsFactory,
    shared_model: str,
    streams: Streams,
    mlflow_server: Any,
) -> None:
    api: Harness = harness(make_settings(serving_model_name=shared_model, serving_shadow=True))
    answers = [api.predict([1, 2, 3, 4], request_id=f"shadow-{i}").json() for i in range(20)]
    assert {a["model"]["version"] for a in answers} == {"1"}
    assert api.service.shadow.drain(10)
    key = api.settings.serving_events_prediction_stream
    assert wait_for(lambda: len(streams.entries(key)) == 20, 10)
    recorded = [events.decode(f) for f in streams.entries(key)]
    challenger = mlflow.sklearn.load_model(f"models:/{shared_model}/2")
    for answer, event in zip(answers, recorded, strict=True):
        assert isinstance(event, events.PredictionEvent)
        assert event.request_id == answer["request_id"]
        assert event.model.version == "1"
        assert event.shadow is not None
        assert event.shadow.model.version == "2" and event.shadow.model.alias == "challenger"
        assert {s.driver_id for s in event.shadow.scores} == {1, 2, 3, 4}
        # the shadow scores are the challenger's on the same features
        rows = np.array(
            [[c.features[f] for f in FEATURES] for c in event.candidates], dtype=np.float64
        )
        expected = dict(
            zip(
                [c.driver_id for c in event.candidates],
                challenger.predict_proba(rows)[:, 1],
                strict=True,
            )
        )
        for shadow in event.shadow.scores:
            assert shadow.score == pytest.approx(float(expected[shadow.driver_id]), abs=1e-9)
        assert event.shadow.best_driver_id == event.shadow.scores[0].driver_id
    text = api.client.get("/metrics").text
    assert metric_value(text, "serving_shadow_predictions_total", outcome="ok") == 20
    assert (
        metric_value(text, "serving_model_duration_seconds_count", model_version="2", role="shadow")
        == 20
    )
