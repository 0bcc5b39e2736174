"""The durable window state (SQLite, no other service): window assignment by count and by event
time, one window per model version, the label join (in either arrival order), label deadlines
and late labels, exactly-once application of redelivered entries, persistence across a reopen,
pruning."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from mon_fixtures import Traffic

from monitoring_service.store import Parsed, Store
from monitoring_service.windows import SINK_SLACK_S, WindowPolicy

POLICY = WindowPolicy(size=10, seconds=60.0, label_grace_s=120.0)


def _store(tmp_path: Path, policy: WindowPolicy = POLICY) -> Store:
    return Store(tmp_path / "state.db", policy)


class Ids:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000
        self.seq = 0

    def __call__(self) -> str:
        self.seq += 1
        return f"{self.ms + self.seq}-0"


def _parsed(events: list, ids: Ids) -> list[Parsed]:  # type: ignore[type-arg]
    return [Parsed(e.type, ids(), e) for e in events]


def test_policy_rules() -> None:
    p = WindowPolicy(size=3, seconds=10.0, label_grace_s=5.0)
    assert not p.full(2) and p.full(3)
    assert not p.starts_next(100.0, 109.999) and p.starts_next(100.0, 110.0)
    assert not p.expired(100.0, None) and not p.expired(100.0, 109.0) and p.expired(100.0, 110.0)
    assert p.label_deadline(50.0) == 55.0
    assert not p.quality_due(55.0, 55.0 + SINK_SLACK_S - 0.1)
    assert p.quality_due(55.0, 55.0 + SINK_SLACK_S)


def test_windows_close_by_count_and_keep_every_prediction(tmp_path: Path) -> None:
    store, ids = _store(tmp_path), Ids()
    traffic = Traffic(spacing_s=0.5)
    events = [e for e, _ in traffic.predictions(25)]
    result = store.apply(_parsed(events, ids))
    assert result.applied["prediction"] == 25
    assert [w.close_reason for w in result.closed] == ["count", "count"]
    windows = sorted(store.windows(), key=lambda w: w.window_id)
    assert [w.predictions for w in windows] == [10, 10, 5]
    assert [w.rows for w in windows] == [50, 50, 25]
    assert [w.state for w in windows] == ["closed", "closed", "open"]
    first = windows[0]
    assert first.opened_at == events[0].time.timestamp()
    assert first.last_time == events[9].time.timestamp()
    assert first.label_deadline == pytest.approx(first.last_time + 120.0)
    assert store.counter("windows", "1", "count") == 2
    assert store.counter("events_consumed", "prediction") == 25


def test_windows_close_by_event_time_and_by_watermark(tmp_path: Path) -> None:
    store, ids = _store(tmp_path), Ids()
    traffic = Traffic(spacing_s=25.0)  # 0, 25, 50 | 75 ... : the 4th starts the next window
    events = [e for e, _ in traffic.predictions(4)]
    result = store.apply(_parsed(events, ids))
    assert [(w.close_reason, w.predictions) for w in result.closed] == [("time", 3)]
    [open_window] = store.windows(states=("open",))
    assert open_window.predictions == 1
    opened = open_window.opened_at
    # the consumer caught up to just before the window's end: still open; past it: closed
    assert store.close_expired(opened + 59.9) == []
    [closed] = store.close_expired(opened + 60.0)
    assert closed.window_id == open_window.window_id and closed.close_reason == "time"
    assert store.windows(states=("open",)) == []


def test_one_open_window_per_model_version(tmp_path: Path) -> None:
    store, ids = _store(tmp_path), Ids()
    champion = [e for e, _ in Traffic(version="3").predictions(6)]
    canary = [e for e, _ in Traffic(version="4", alias="challenger", seed=9).predictions(4)]
    store.apply(_parsed([*champion[:3], *canary, *champion[3:]], ids))
    open_windows = {w.model_version: w for w in store.windows(states=("open",))}
    assert {v: w.predictions for v, w in open_windows.items()} == {"3": 6, "4": 4}


def test_redelivered_entries_are_applied_once(tmp_path: Path) -> None:
    """A crash between the commit and the acknowledgement delivers the batch again."""
    store, ids = _store(tmp_path), Ids()
    traffic = Traffic()
    predictions = [e for e, _ in traffic.predictions(7)]
    batch = _parsed(predictions, ids)
    batch.append(Parsed("feedback", ids(), Traffic.feedback(predictions[0], True)))
    batch.append(Parsed("prediction", ids(), None, "data: not JSON"))
    first = store.apply(batch)
    assert first.applied == {"prediction": 7, "feedback": 1} and first.dead["prediction"] == 1
    again = store.apply(batch)
    assert sum(again.applied.values()) == 0 and sum(again.dead.values()) == 0
    assert again.duplicates == {"prediction": 8, "feedback": 1}
    [window] = store.windows()
    assert window.predictions == 7 and window.rows == 35
    assert store.totals()["predictions"] == 7 and store.totals()["feedback"] == 1
    assert store.counter("events_consumed", "prediction") == 7
    assert store.counter("events_malformed", "prediction") == 1
    assert store.counter("events_duplicate", "prediction") == 8


def test_a_failed_batch_leaves_no_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure in the middle of a batch rolls the whole batch back (nothing half-applied:
    the consumer has not acknowledged it, so it comes again)."""
    store, ids = _store(tmp_path), Ids()
    events = [e for e, _ in Traffic().predictions(3)]
    batch = [*_parsed(events, ids), Parsed("feedback", ids(), Traffic.feedback(events[0], True))]

    def broken(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store, "_feedback", broken)
    with pytest.raises(OSError, match="disk full"):
        store.apply(batch)
    assert store.totals() == {
        "entries": 0,
        "predictions": 0,
        "candidates": 0,
        "feedback": 0,
        "windows": 0,
    }
    assert store.counters() == {}
    monkeypatch.undo()
    assert store.apply(batch).applied == {"prediction": 3, "feedback": 1}


def test_labels_join_in_either_order_and_respect_the_deadline(tmp_path: Path) -> None:
    store, ids = _store(tmp_path, WindowPolicy(size=4, seconds=600.0, label_grace_s=60.0)), Ids()
    traffic = Traffic(spacing_s=1.0)
    events = [e for e, _ in traffic.predictions(4)]
    early = Traffic.feedback(events[0], True, delay_s=5.0)  # arrives before its prediction
    result = store.apply([Parsed("feedback", ids(), early)])
    assert result.delays == []  # nothing to join yet
    result = store.apply(_parsed(events, ids))
    assert result.delays == [("1", pytest.approx(5.0))]
    [window] = result.closed
    deadline = window.label_deadline
    assert deadline == pytest.approx(events[-1].time.timestamp() + 60.0)
    on_time = Traffic.feedback(events[1], False, delay_s=20.0)
    other_driver = Traffic.feedback(
        events[2], True, delay_s=20.0, driver=events[2].candidates[-1].driver_id
    )
    corrected = Traffic.feedback(events[1], True, delay_s=40.0)  # newest label wins
    too_late = Traffic.feedback(events[3], True, delay_s=500.0)
    result = store.apply(_parsed([on_time, other_driver, corrected, too_late], ids))
    assert len(result.delays) == 4
    assert result.late == {"1": 1}
    rows = store.rows(window.window_id, deadline)
    assert len(rows) == 20
    labels = rows.dropna(subset=["label"])
    got = {(r.request_id, r.driver_id): (int(r.label), r.label_time) for r in labels.itertuples()}
    assert got == {
        (events[0].request_id, events[0].best_driver_id): (1, early.time.timestamp()),
        (events[1].request_id, events[1].best_driver_id): (1, corrected.time.timestamp()),
        (events[2].request_id, events[2].candidates[-1].driver_id): (
            1,
            other_driver.time.timestamp(),
        ),
    }
    # without a deadline the late label is there too
    assert store.rows(window.window_id, None)["label"].notna().sum() == 4
    assert store.counter("labels_late", "1") == 1


def test_label_after_the_quality_evaluation_is_late(tmp_path: Path) -> None:
    store, ids = _store(tmp_path, WindowPolicy(size=2, seconds=600.0, label_grace_s=600.0)), Ids()
    events = [e for e, _ in Traffic().predictions(2)]
    [window] = store.apply(_parsed(events, ids)).closed
    store.record(window.window_id, "drifted", drift={"dataset_drift": False})
    store.record(window.window_id, "final", quality={"labels": {}})
    assert store.rows(window.window_id, None).empty  # a final window's candidates are dropped
    result = store.apply([Parsed("feedback", ids(), Traffic.feedback(events[0], True, 10.0))])
    assert result.late == {"1": 1}


def test_evaluation_work_list(tmp_path: Path) -> None:
    store, ids = _store(tmp_path, WindowPolicy(size=2, seconds=600.0, label_grace_s=30.0)), Ids()
    events = [e for e, _ in Traffic(spacing_s=1.0).predictions(4)]
    closed = store.apply(_parsed(events, ids)).closed
    assert [(w.window_id, stage) for w, stage in store.due(None)] == [
        (closed[0].window_id, "drift"),
        (closed[1].window_id, "drift"),
    ]
    store.record(closed[0].window_id, "drifted", drift={"dataset_drift": True})
    assert closed[0].label_deadline is not None
    not_yet = closed[0].label_deadline + SINK_SLACK_S - 1
    assert [s for _, s in store.due(not_yet)] == ["drift"]
    assert [s for _, s in store.due(not_yet + 1)] == ["quality", "drift"]


def test_consecutive_drifted_windows(tmp_path: Path) -> None:
    store, ids = _store(tmp_path, WindowPolicy(size=1, seconds=600.0, label_grace_s=0.0)), Ids()
    events = [e for e, _ in Traffic().predictions(5)]
    closed = store.apply(_parsed(events, ids)).closed
    for window, drifted in zip(closed, (True, False, True, True, True), strict=True):
        store.record(window.window_id, "final", drift={"dataset_drift": drifted})
    assert store.consecutive_drifted("1", closed[-1].window_id) == 3
    assert store.consecutive_drifted("1", closed[1].window_id) == 0
    assert store.consecutive_drifted("2", closed[-1].window_id) == 0


def test_state_and_counters_survive_a_reopen(tmp_path: Path) -> None:
    ids = Ids()
    events = [e for e, _ in Traffic().predictions(13)]
    first = _store(tmp_path)
    first.apply(_parsed(events[:6], ids))
    first.close()
    second = _store(tmp_path)
    second.apply(_parsed(events[6:], ids))
    windows = sorted(second.windows(), key=lambda w: w.window_id)
    assert [w.predictions for w in windows] == [10, 3]
    assert second.counter("events_consumed", "prediction") == 13
    assert second.counters()[("windows", ("1", "count"))] == 1


def test_schema_version_is_checked(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.connection().execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    store.close()
    with pytest.raises(RuntimeError, match="schema 99"):
        _store(tmp_path)


def test_prune_forgets_old_state_only(tmp_path: Path) -> None:
    store, ids = _store(tmp_path, WindowPolicy(size=2, seconds=600.0, label_grace_s=0.0)), Ids()
    old = Traffic(start=Traffic().start - timedelta(days=10))
    recent = Traffic(seed=3)
    old_events = [e for e, _ in old.predictions(4)]
    new_events = [e for e, _ in recent.predictions(2)]
    closed = store.apply(_parsed([*old_events, *new_events], ids)).closed
    store.apply([Parsed("feedback", ids(), Traffic.feedback(old_events[0], True))])
    for window in closed:
        store.record(window.window_id, "final", quality={"labels": {}})
    before = store.totals()
    pruned = store.prune(now=recent.start.timestamp() + 10, retention_s=7 * 86400, keep_windows=2)
    assert pruned == {"predictions": 4, "labels": 1, "windows": 1}
    assert store.totals()["entries"] == before["entries"]  # only prune_entries touches them
    # entry ids: the caller names the horizon (the consumer group's oldest redeliverable entry)
    assert store.prune_entries("prediction", ids.ms + 3) == 2  # ids ms+1, ms+2
    assert store.prune_entries("feedback", ids.ms + 3) == 0
    assert store.totals()["entries"] == before["entries"] - 2
    assert store.totals()["predictions"] == 2
    assert len(store.windows()) == 2
    assert json.loads(json.dumps(store.windows()[0].summary()))["predictions"] == 2
