"""The example company's dispatcher (``example-project dispatch``): what it sends, whom it assigns,
how outcomes are drawn and when they are reported, what it counts as a failure.

The serving API is replaced here by ``httpx.MockTransport`` answering the documented contract
(model_serving/README.md), so that each client behaviour can be provoked (a 409, a 503, a
connection error); the dispatcher against the real serving API runs in the end-to-end test
(tests/e2e) and ``test_dispatch_cli_against_a_real_http_server`` below.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from example_project.dispatcher import Dispatcher, DispatchMetrics
from example_project.world.completion import (
    CONCEPT_DRIFT_WEIGHTS,
    FEATURES,
    NORMAL_WEIGHTS,
    completion_probability,
    weights_at,
)
from mlops_testing.data import isolated_example_settings
from mlops_testing.http import send_json

DRIFT = datetime(2026, 1, 1, 12, tzinfo=UTC)
GOOD = {
    "conv_rate": 0.9,
    "acc_rate": 0.95,
    "avg_daily_trips": 14,
    "rating": 4.9,
    "cancel_rate": 0.01,
}
# busy and converting well: the concept drift flips the effect of the trip count
BUSY = {
    "conv_rate": 0.8,
    "acc_rate": 0.75,
    "avg_daily_trips": 30,
    "rating": 4.5,
    "cancel_rate": 0.08,
}


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def serving(
    status: int = 200, fail: bool = False, ready: list[bool] | None = None
) -> tuple[httpx.MockTransport, list[Any]]:
    calls: list[Any] = []
    ready = [True] if ready is None else ready

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            calls.append((request.url.path, None, None))
            return httpx.Response(200 if ready[0] else 503, json={"status": "x"})
        body = json.loads(request.content)
        calls.append((request.url.path, body, request.headers.get("x-api-key")))
        if fail:
            raise httpx.ConnectError("refused", request=request)
        if request.url.path == "/v1/feedback":
            return httpx.Response(202, json={"status": "accepted"})
        if status != 200:
            return httpx.Response(status, json={"error": "x", "message": "y"})
        ids = body["driver_ids"]
        scores = [{"driver_id": d, "score": 1.0 - i / 10} for i, d in enumerate(sorted(ids))]
        return httpx.Response(
            200,
            json={
                "request_id": f"r{len(calls)}",
                "best_driver_id": scores[0]["driver_id"],
                "scores": scores,
                "model": {"name": "m", "version": "7", "alias": "champion"},
            },
        )

    return httpx.MockTransport(handle), calls


def make(tmp_path: Path, transport: httpx.MockTransport, **values: Any) -> tuple[Dispatcher, Clock]:
    values = {
        "example_drivers": 50,
        "dispatch_seed": 1,
        "dispatch_label_delay_min_s": 5,
        "dispatch_label_delay_max_s": 10,
        **values,
    }
    settings = isolated_example_settings(tmp_path, **values)
    client = httpx.Client(
        transport=transport, base_url="http://serving", headers={"X-API-Key": "k"}
    )
    clock = Clock()
    return Dispatcher(
        settings,
        client,
        lambda driver: dict(GOOD),
        DispatchMetrics(),
        clock=clock,
        now=lambda: DRIFT,
    ), clock


def value(metrics: DispatchMetrics, name: str, **labels: str) -> float:
    got = metrics.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def test_weights_follow_the_scenario_and_the_drift_start() -> None:
    assert weights_at("normal", None, DRIFT) is NORMAL_WEIGHTS
    assert weights_at("concept_drift", DRIFT, DRIFT - timedelta(seconds=1)) is NORMAL_WEIGHTS
    assert weights_at("concept_drift", DRIFT, DRIFT) is CONCEPT_DRIFT_WEIGHTS
    assert weights_at("covariate_drift", DRIFT, DRIFT) is NORMAL_WEIGHTS  # labels keep the model


def test_a_booking_ranks_distinct_drivers_and_reports_the_outcome_after_the_delay(
    tmp_path: Path,
) -> None:
    transport, calls = serving()
    dispatcher, clock = make(tmp_path, transport, dispatch_explore=0.0)
    body = dispatcher.book()
    assert body is not None
    path, sent, key = calls[0]
    assert (path, key) == ("/v1/predict", "k")
    assert len(set(sent["driver_ids"])) == 5
    assert all(1001 <= d <= 1050 for d in sent["driver_ids"])
    assert body["driver_id"] == min(sent["driver_ids"])  # the best of the ranking (no explore)
    assert body["request_id"] == "r1"
    assert dispatcher.send_due() == 0  # the label delay has not passed
    clock.t = 10.0
    assert dispatcher.send_due() == 1
    assert calls[-1][0] == "/v1/feedback" and calls[-1][1] == body
    m = dispatcher.metrics
    assert value(m, "dispatch_bookings_total", outcome="assigned") == 1
    assert value(m, "dispatch_requests_total", route="/v1/feedback", status="202") == 1


def test_exploration_assigns_other_candidates_in_the_configured_share(tmp_path: Path) -> None:
    transport, calls = serving()
    dispatcher, _ = make(tmp_path, transport, dispatch_explore=0.5)
    best = 0
    for _ in range(400):
        body = dispatcher.book()
        assert body is not None
        best += body["driver_id"] == min(calls[-1][1]["driver_ids"])
    # best: 1 - 0.5 + 0.5 / 5 = 0.6 of the bookings
    assert 0.52 < best / 400 < 0.68


def test_outcomes_follow_the_true_model_of_the_scenario(tmp_path: Path) -> None:
    frame = pd.DataFrame([BUSY])[list(FEATURES)]
    p_normal = float(completion_probability(frame, NORMAL_WEIGHTS)[0])
    p_drift = float(completion_probability(frame, CONCEPT_DRIFT_WEIGHTS)[0])
    assert p_normal - p_drift > 0.3
    for scenario, expected in (("normal", p_normal), ("concept_drift", p_drift)):
        transport, _ = serving()
        dispatcher, _ = make(
            tmp_path / scenario, transport, example_scenario=scenario, example_drift_start=DRIFT
        )
        dispatcher.features = lambda driver: dict(BUSY)
        outcomes = [dispatcher.book()["trip_completed"] for _ in range(2000)]  # type: ignore[index]
        assert abs(np.mean(outcomes) - expected) < 0.03, scenario


@pytest.mark.parametrize(
    ("status", "fail", "outcome", "failures"),
    [
        (409, False, "no_scorable", 0),
        (503, False, "failed", 1),
        (422, False, "failed", 0),
        (200, True, "failed", 1),
    ],
)
def test_refusals_and_failures_are_counted_and_nothing_is_assigned(
    tmp_path: Path, status: int, fail: bool, outcome: str, failures: int
) -> None:
    transport, _ = serving(status, fail)
    dispatcher, clock = make(tmp_path, transport)
    assert dispatcher.book() is None
    clock.t = 100
    assert dispatcher.send_due() == 0
    m = dispatcher.metrics
    assert value(m, "dispatch_bookings_total", outcome=outcome) == 1
    assert value(m, "dispatch_failed_requests_total", route="/v1/predict") == failures


def test_run_keeps_the_rate_and_reports_every_outcome_at_the_end(tmp_path: Path) -> None:
    transport, calls = serving()
    dispatcher, _ = make(
        tmp_path,
        transport,
        dispatch_rate=200.0,
        dispatch_label_delay_min_s=60,
        dispatch_label_delay_max_s=60,
    )
    dispatcher._clock = time.monotonic  # real time for the rate
    began = time.monotonic()
    assert dispatcher.run(threading.Event(), max_bookings=100) == 100
    elapsed = time.monotonic() - began
    assert 0.4 < elapsed < 5.0  # 100 bookings at 200/s: about half a second
    feedback = [c for c in calls if c[0] == "/v1/feedback"]
    assert len(feedback) == 100  # the long label delay did not lose the outcomes at stop


def test_bookings_wait_until_serving_is_ready(tmp_path: Path) -> None:
    ready = [False]
    transport, calls = serving(ready=ready)
    dispatcher, clock = make(tmp_path, transport)
    assert not dispatcher.wait_ready()
    assert not dispatcher.wait_ready()  # not asked again within the poll interval
    assert [c[0] for c in calls] == ["/health/ready"]
    ready[0] = True
    clock.t = 2.0
    assert not dispatcher.wait_ready()  # still within the interval
    clock.t = 4.0
    assert dispatcher.wait_ready()
    assert value(dispatcher.metrics, "dispatch_serving_ready") == 1
    ready[0] = False
    clock.t = 100.0
    assert dispatcher.wait_ready()  # once ready, every later request counts
    assert [c[0] for c in calls].count("/health/ready") == 2


def test_dispatch_cli_against_a_real_http_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command end to end over real HTTP (a tiny server speaking the serving contract) with
    the online store replaced by a fixed reader: key header, predict, feedback, exit code."""
    from example_project import dispatcher as module
    from example_project.cli import main

    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, None))
            self.send_response(200 if self.path == "/health/ready" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, self.headers.get("X-API-Key")))
            if self.path == "/v1/predict":
                d = body["driver_ids"][0]
                answer = {
                    "request_id": "x",
                    "best_driver_id": d,
                    "scores": [{"driver_id": d, "score": 0.5}],
                    "model": {"name": "m", "version": "1", "alias": "champion"},
                }
                code = 200
            else:
                answer, code = {"status": "accepted"}, 202
            send_json(self, code, answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setattr(module, "online_feature_reader", lambda s: lambda d: dict(GOOD))
        for name, val in {
            "MLOPS_ENV_FILE": str(tmp_path / "no.env"),
            "MLOPS_DATA_DIR": str(tmp_path),
            "MLOPS_DISPATCH_SERVING_URL": f"http://127.0.0.1:{server.server_port}",
            "SERVING_API_KEY": "secret-key",
            "DISPATCH_METRICS_PORT": "0",
            "MLOPS_DISPATCH_RATE": "100",
            "MLOPS_DISPATCH_LABEL_DELAY_MAX_S": "0",
            "MLOPS_DISPATCH_LABEL_DELAY_MIN_S": "0",
        }.items():
            monkeypatch.setenv(name, val)
        assert main(["dispatch", "--max-bookings", "5"]) == 0
        assert "dispatched 5 bookings" in capsys.readouterr().out
        assert [p for p, _ in seen].count("/v1/predict") == 5
        assert [p for p, _ in seen].count("/v1/feedback") == 5
        assert {key for path, key in seen if path != "/health/ready"} == {"secret-key"}
        assert seen[0] == ("/health/ready", None)
        monkeypatch.setenv("SERVING_API_KEY", "")
        with pytest.raises(SystemExit) as no_key:
            main(["dispatch", "--max-bookings", "1"])
        assert no_key.value.code == 2
    finally:
        server.shutdown()
        thread.join(5)
