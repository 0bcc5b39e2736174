"""The event consumer against the machine's real Redis (streams of each test's own): events into
the window state, malformed entries to the dead-letter stream with the reason, acknowledgement
only after the state is committed, redelivery after a crash applied once, another consumer's
stuck entries claimed, windows closed by the watermark, the backlog gauge."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from mon_fixtures import SettingsFactory, Streams, Traffic

from mlops_common.events.serving import encode
from monitoring_service.consumer import EventConsumer
from monitoring_service.metrics import MonitoringMetrics
from monitoring_service.store import Store

pytestmark = pytest.mark.integration


def _parts(settings: Any) -> tuple[Store, MonitoringMetrics]:
    return Store(settings.db_path, settings.window_policy), MonitoringMetrics()


def _consumer(settings: Any, store: Store, metrics: MonitoringMetrics, **kw: Any) -> EventConsumer:
    return EventConsumer(settings, store, metrics, **kw)


def _grouped_consumer(
    make_settings: SettingsFactory,
) -> tuple[Store, MonitoringMetrics, EventConsumer]:
    """A consumer of default settings whose consumer groups exist, its store and metrics."""
    settings = make_settings()
    store, metrics = _parts(settings)
    consumer = _consumer(settings, store, metrics)
    consumer.ensure_groups()
    return store, metrics, consumer


def _pending(client: redis.Redis, stream: str, group: str = "monitoring") -> int:
    info: Any = client.xpending(stream, group)
    return int(info["pending"])


def test_events_flow_and_malformed_entries_are_dead_lettered(
    make_settings: SettingsFactory, streams: Streams, redis_client: redis.Redis
) -> None:
    settings = make_settings(monitoring_window_size=10)
    store, metrics = _parts(settings)
    traffic = Traffic()
    predictions = [e for e, _ in traffic.predictions(23)]
    feedback = [Traffic.feedback(e, True) for e in predictions[:5]]
    streams.add([*predictions, *feedback])
    bad_json = streams.add_raw(
        streams.predictions, {"type": "prediction", "schema_version": "1", "data": "{nope"}
    )
    future = Traffic(start=datetime.now(UTC) + timedelta(hours=1)).predictions(1)[0][0]
    [too_new] = streams.add([future])
    wrong_version = streams.add_raw(
        streams.feedback, {"type": "feedback", "schema_version": "3", "data": "{}"}
    )
    misplaced = streams.add_raw(streams.predictions, encode(feedback[0]))

    consumer = _consumer(settings, store, metrics)
    consumer.run(idle_exit_s=1.0)

    assert store.counter("events_consumed", "prediction") == 23
    assert store.counter("events_consumed", "feedback") == 5
    assert store.counter("events_malformed", "prediction") == 3
    assert store.counter("events_malformed", "feedback") == 1
    assert [w.predictions for w in sorted(store.windows(), key=lambda w: w.window_id)] == [
        10,
        10,
        3,
    ]
    dead: Any = redis_client.xrange(streams.dead)
    letters = {}
    for _, raw in dead:
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        letters[(fields["source_stream"], fields["source_id"])] = fields
    p, f = streams.predictions, streams.feedback
    assert set(letters) == {(p, bad_json), (p, too_new), (f, wrong_version), (p, misplaced)}
    assert "not JSON" in letters[(p, bad_json)]["reason"]
    assert "in the future" in letters[(p, too_new)]["reason"]
    assert "schema_version" in letters[(f, wrong_version)]["reason"]
    assert "feedback event in the prediction stream" in letters[(p, misplaced)]["reason"]
    assert json.loads(letters[(p, bad_json)]["original"])["data"] == "{nope"
    # everything acknowledged: nothing pending
    assert _pending(redis_client, streams.predictions) == 0
    assert _pending(redis_client, streams.feedback) == 0
    assert metrics.events_consumed.labels("prediction")._value.get() == 23
    assert metrics.events_malformed.labels("prediction")._value.get() == 3


def test_entries_are_acknowledged_only_after_the_commit(
    make_settings: SettingsFactory,
    streams: Streams,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(monitoring_backoff_max_s=0.2)
    store, metrics = _parts(settings)
    events = [e for e, _ in Traffic().predictions(12)]
    streams.add(events)
    real_apply = store.apply
    calls: list[int] = []
    seen_pending: list[int] = []

    def failing(items: Any, now: float | None = None) -> Any:
        calls.append(len(items))
        if len(calls) == 1:
            seen_pending.append(_pending(redis_client, streams.predictions))
            raise OSError("state store unavailable")
        return real_apply(items, now)

    monkeypatch.setattr(store, "apply", failing)
    consumer = _consumer(settings, store, metrics)
    consumer.run(idle_exit_s=1.0)
    assert seen_pending == [12]  # delivered, not acknowledged while the write failed
    assert calls[0] == 12 and len(calls) >= 2
    assert store.counter("events_consumed", "prediction") == 12
    assert store.totals()["predictions"] == 12
    assert _pending(redis_client, streams.predictions) == 0
    assert metrics.consumer_errors.labels("OSError")._value.get() == 1


def test_redelivery_after_a_crash_between_commit_and_ack_is_applied_once(
    make_settings: SettingsFactory, streams: Streams, redis_client: redis.Redis
) -> None:
    settings = make_settings()
    store, metrics = _parts(settings)
    events = [e for e, _ in Traffic().predictions(8)]
    streams.add([*events, Traffic.feedback(events[0], False)])
    streams.add_raw(streams.feedback, {"type": "feedback", "schema_version": "1", "data": "[]"})
    crashed = _consumer(settings, store, metrics)
    crashed.ensure_groups()
    entries, _ = crashed.read()
    store.apply(crashed.parse(entries)[0])  # committed ... and the process dies before XACK
    assert _pending(redis_client, streams.predictions) == 8
    assert redis_client.xlen(streams.dead) == 0

    restarted = _consumer(settings, store, MonitoringMetrics())  # same consumer name
    restarted.run(idle_exit_s=1.0)
    assert store.counter("events_consumed", "prediction") == 8
    assert store.counter("events_consumed", "feedback") == 1
    assert store.counter("events_duplicate", "prediction") == 8
    assert store.counter("events_malformed", "feedback") == 1  # counted once
    assert redis_client.xlen(streams.dead) == 1  # written once, with the acknowledgement
    assert store.totals()["predictions"] == 8
    assert _pending(redis_client, streams.predictions) == 0
    assert _pending(redis_client, streams.feedback) == 0


def test_entries_of_a_vanished_consumer_are_claimed(
    make_settings: SettingsFactory, streams: Streams, redis_client: redis.Redis
) -> None:
    old = make_settings(monitoring_consumer_name="old-host-1")
    store, metrics = _parts(old)
    streams.add([e for e, _ in Traffic().predictions(6)])
    gone = _consumer(old, store, metrics)
    gone.ensure_groups()
    entries, _ = gone.read()
    assert len(entries) == 6  # delivered to old-host-1, never processed
    new = make_settings(monitoring_consumer_name="new-host-1", monitoring_claim_min_idle_ms=100)
    threading.Event().wait(0.2)
    _consumer(new, store, metrics).run(idle_exit_s=1.0)
    assert store.counter("events_consumed", "prediction") == 6
    assert _pending(redis_client, streams.predictions) == 0


def test_the_watermark_closes_a_quiet_window(
    make_settings: SettingsFactory, streams: Streams
) -> None:
    settings = make_settings(monitoring_window_seconds=1.0, monitoring_window_size=1000)
    store, metrics = _parts(settings)
    closed: list[Any] = []
    streams.add([e for e, _ in Traffic(start=datetime.now(UTC)).predictions(5)])
    consumer = _consumer(settings, store, metrics, on_closed=closed.extend)
    consumer.run(idle_exit_s=2.5)
    assert [(w.close_reason, w.predictions) for w in closed] == [("time", 5)]
    assert consumer.watermark is not None
    assert metrics.windows.labels("1", "time")._value.get() == 1


def test_a_backlog_replayed_later_closes_windows_by_event_time(
    make_settings: SettingsFactory, streams: Streams
) -> None:
    """Events of an hour ago, read in one go: the windows follow the events' times (10 s each),
    not the moment they are read."""
    settings = make_settings(
        monitoring_window_seconds=10.0, monitoring_window_size=1000, monitoring_batch_size=7
    )
    store, metrics = _parts(settings)
    start = datetime.now(UTC) - timedelta(hours=1)
    streams.add([e for e, _ in Traffic(start=start, spacing_s=1.0).predictions(35)])
    _consumer(settings, store, metrics).run(idle_exit_s=1.0)
    windows = sorted(store.windows(), key=lambda w: w.window_id)
    assert [w.predictions for w in windows] == [10, 10, 10, 5]
    assert all(w.state == "closed" for w in windows)  # the last one by the watermark


def test_backlog_gauge(
    make_settings: SettingsFactory, streams: Streams, redis_client: redis.Redis
) -> None:
    _, metrics, consumer = _grouped_consumer(make_settings)
    streams.add([e for e, _ in Traffic().predictions(40)])
    consumer.core.update_gauges()
    assert metrics.events_backlog.labels("prediction")._value.get() == 40
    assert metrics.events_backlog.labels("feedback")._value.get() == 0
    consumer.read()  # delivered, not yet acknowledged: still backlog (pending)
    consumer.core.update_gauges()
    assert metrics.events_pending.labels("prediction")._value.get() == 40
    assert metrics.events_backlog.labels("prediction")._value.get() == 40
    consumer.run(idle_exit_s=0.5)
    consumer.core.update_gauges()
    assert metrics.events_backlog.labels("prediction")._value.get() == 0


def test_a_broker_outage_is_survived(
    make_settings: SettingsFactory, streams: Streams, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(monitoring_backoff_max_s=0.2)
    store, metrics = _parts(settings)
    consumer = _consumer(settings, store, metrics)
    real: Callable[..., Any] = consumer.client.xreadgroup
    failures = {"left": 3}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise redis.ConnectionError("connection refused")
        return real(*args, **kwargs)

    monkeypatch.setattr(consumer.client, "xreadgroup", flaky)
    streams.add([e for e, _ in Traffic().predictions(4)])
    consumer.run(idle_exit_s=1.5)
    assert store.counter("events_consumed", "prediction") == 4
    assert metrics.consumer_errors.labels("ConnectionError")._value.get() == 3
    assert consumer.up is True and "connection refused" in (consumer.last_error or "")


def test_applied_entry_ids_are_forgotten_only_once_they_cannot_come_again(
    make_settings: SettingsFactory, streams: Streams, redis_client: redis.Redis
) -> None:
    store, _, consumer = _grouped_consumer(make_settings)
    ids = streams.add([e for e, _ in Traffic().predictions(5)])
    entries, _ = consumer.read()  # delivered, pending
    assert consumer.horizon_ms(streams.predictions) == int(ids[0].split("-")[0])
    consumer.process(entries)  # applied and acknowledged: the horizon is the last delivered
    assert consumer.horizon_ms(streams.predictions) == int(ids[-1].split("-")[0])
    redis_client.xgroup_destroy(streams.feedback, "monitoring")
    assert consumer.horizon_ms(streams.feedback) is None
    consumer.ensure_groups()
    consumer.housekeeping()  # within the minute of margin: nothing forgotten yet
    assert store.totals()["entries"] == 5
    assert store.prune_entries(streams.predictions, int(ids[-1].split("-")[0]) + 1) == 5


def test_an_event_that_cannot_be_applied_is_dead_lettered_after_the_retry_bound(
    make_settings: SettingsFactory, streams: Streams, redis_client: redis.Redis
) -> None:
    """A poison pill: a feedback event whose request id is a lone surrogate (escaped in the
    JSON ``data``, so the entry is valid UTF-8 and decodes) cannot be stored (SQLite refuses
    text that is not UTF-8). It fails its batch, then fails alone; after
    ``MONITORING_MAX_DELIVERIES`` attempts it goes to the dead-letter stream with the error and
    is acknowledged, instead of being retried forever. The good events around it are applied.
    An entry with raw bytes that are not UTF-8 is refused at decoding, at once."""
    settings = make_settings(monitoring_backoff_max_s=0.2, monitoring_max_deliveries=3)
    store, metrics = _parts(settings)
    events = [e for e, _ in Traffic().predictions(6)]
    good = [Traffic.feedback(e, True) for e in events[:3]]
    poison = encode(Traffic.feedback(events[3], False))
    poison["data"] = poison["data"].replace(events[3].request_id, "\\udc80")
    streams.add(events[:3])
    [poison_id] = [streams.add_raw(streams.feedback, poison)]
    streams.add([*events[3:], *good])
    raw_id = redis_client.xadd(
        streams.feedback, {b"type": b"feedback", b"schema_version": b"1", b"data": b"\xff\xfe"}
    ).decode()

    _consumer(settings, store, metrics).run(idle_exit_s=3.0)

    assert store.counter("events_consumed", "prediction") == 6
    assert store.counter("events_consumed", "feedback") == 3
    assert store.counter("events_malformed", "feedback") == 2
    dead: Any = redis_client.xrange(streams.dead)
    letters = {
        fields[b"source_id"].decode(): {k.decode(): v.decode() for k, v in fields.items()}
        for _, fields in dead
    }
    assert set(letters) == {poison_id, raw_id}
    assert "UnicodeEncodeError" in letters[poison_id]["reason"]
    assert "3" in letters[poison_id]["reason"]
    assert letters[poison_id]["deliveries"] == "3"
    assert letters[poison_id]["source_stream"] == streams.feedback
    assert json.loads(letters[poison_id]["original"]) == poison
    assert "not UTF-8" in letters[raw_id]["reason"]
    assert json.loads(letters[raw_id]["original"])["data"] == "\\xff\\xfe"
    assert _pending(redis_client, streams.predictions) == 0
    assert _pending(redis_client, streams.feedback) == 0
    assert metrics.consumer_errors.labels("UnicodeEncodeError")._value.get() >= 1
