"""The event sink down or hung: predictions still succeed at full speed, events buffer up to
the bound, the rest are dropped and counted; when the sink is back the buffer drains."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from ms_fixtures import REDIS_URL, TcpProxy, auth, metric_value, wait_for
from ms_harness import Harness, SettingsFactory, Streams

from mlops_common.events import serving as events

pytestmark = pytest.mark.integration

BOUND = 40


@pytest.fixture
def redis_proxy() -> Iterator[TcpProxy]:
    parts = urlsplit(REDIS_URL)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    proxy.up()
    yield proxy
    proxy.down()


@pytest.fixture
def proxied_api(
    harness: Any, make_settings: SettingsFactory, shared_model: str, redis_proxy: TcpProxy
) -> Callable[[int], Harness]:
    """Factory: a serving app whose event sink reaches Redis through `redis_proxy` and buffers
    at most the given number of events while it is down."""
    db = urlsplit(REDIS_URL).path or "/0"

    def start(buffer: int) -> Harness:
        api: Harness = harness(
            make_settings(
                serving_model_name=shared_model,
                serving_events_redis_url=f"redis://{redis_proxy.url_host}{db}",
                serving_events_buffer=buffer,
            )
        )
        return api

    return start


def timed_predictions(api: Harness, n: int, prefix: str) -> list[float]:
    latencies = []
    for i in range(n):
        began = time.perf_counter()
        response = api.predict([1, 2, 3], request_id=f"{prefix}-{i}")
        latencies.append(time.perf_counter() - began)
        assert response.status_code == 200, response.text
    return latencies


@pytest.mark.parametrize("failure", ["down", "blackhole"])
def test_sink_failure_never_fails_or_slows_predictions(
    proxied_api: Callable[[int], Harness], streams: Streams, redis_proxy: TcpProxy, failure: str
) -> None:
    api = proxied_api(BOUND)
    key = api.settings.serving_events_prediction_stream
    baseline = timed_predictions(api, 30, "up")
    assert wait_for(lambda: len(streams.entries(key)) == 30, 10)

    redis_proxy.down() if failure == "down" else redis_proxy.blackhole()
    during = timed_predictions(api, 100, failure)
    # the request path does no I/O to the sink: no slower than with the sink up (generous
    # margin for this machine's noise) and far from any socket timeout
    assert statistics.median(during) < statistics.median(baseline) * 3 + 0.005
    assert max(during) < 0.5
    assert wait_for(lambda: api.service.sink.up is False, 10)

    text = api.client.get("/metrics").text
    dropped = metric_value(
        text, "serving_events_dropped_total", type="prediction", reason="buffer_full"
    )
    buffered = len(api.service.sink._buffer)
    assert buffered <= BOUND
    assert dropped >= 100 - BOUND
    assert dropped + buffered == 100
    ready = api.client.get("/health/ready")
    assert ready.status_code == 200  # still serving
    assert ready.json()["checks"]["events"]["ok"] is False
    assert ready.json()["checks"]["events"]["last_error"]
    assert metric_value(text, "serving_events_sink_up") == 0

    redis_proxy.up()
    assert wait_for(lambda: len(streams.entries(key)) == 30 + buffered, 20), (
        len(streams.entries(key)),
        buffered,
    )
    assert wait_for(lambda: api.service.sink.up is True, 5)
    decoded = [events.decode(f) for f in streams.entries(key)]
    assert all(isinstance(e, events.PredictionEvent) for e in decoded)
    after = metric_value(
        api.client.get("/metrics").text,
        "serving_events_dropped_total",
        type="prediction",
        reason="buffer_full",
    )
    assert after == dropped
    timed_predictions(api, 5, "back")
    assert wait_for(lambda: len(streams.entries(key)) == 35 + buffered, 10)


def test_feedback_is_accepted_while_the_sink_is_down(
    proxied_api: Callable[[int], Harness], redis_proxy: TcpProxy
) -> None:
    redis_proxy.down()
    api = proxied_api(5)
    for i in range(10):
        assert api.predict([1], request_id=f"r-{i}").status_code == 200
        response = api.client.post(
            "/v1/feedback",
            json={"request_id": f"r-{i}", "driver_id": 1, "trip_completed": True},
            headers=auth(),
        )
        assert response.status_code == 202
    assert wait_for(
        lambda: (
            metric_value(
                api.client.get("/metrics").text, "serving_events_dropped_total", type="feedback"
            )
            >= 5
        ),
        10,
    )


def test_no_sink_configured_counts_every_event_as_dropped(
    harness: Any,
    make_settings: SettingsFactory,
    shared_model: str,
) -> None:
    api: Harness = harness(
        make_settings(
            serving_model_name=shared_model,
            serving_events_redis_url="",
            mlops_online_store_url="sqlite:///x.db",
        )
    )
    assert api.predict([1, 2]).status_code == 200
    text = api.client.get("/metrics").text
    assert (
        metric_value(text, "serving_events_dropped_total", type="prediction", reason="no_sink") == 1
    )
    assert api.client.get("/health/ready").json()["checks"]["events"]["enabled"] is False
