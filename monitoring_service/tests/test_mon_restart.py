"""Acceptance: the monitoring service's restart in the middle of a window loses no event.

``monitoring-service serve`` runs as a real process against the real Redis and a real MLflow
server while a producer keeps writing prediction and feedback events. The service is killed
with SIGKILL in the middle of a window (no shutdown code runs: whatever was in flight is cut
off), restarted while events keep arriving, then stopped with SIGTERM in the middle of another
window (the producer is held back just then, so that no late batch can fill that window before
the signal lands) and restarted again. At the end every event produced has been counted exactly
once: the windows hold exactly the predictions produced (no loss, no double count), every request
id is in the state once, nothing is left pending in the consumer group, and the service's own
counters (restored from the state after each restart) agree.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from mon_fixtures import (
    ServiceProcess,
    Streams,
    Traffic,
    free_port,
    metric_values,
    reference_frame,
    register_with_reference,
    service_env,
    unique,
    wait_for,
)

from mlops_testing.stack import MlflowServer

pytestmark = pytest.mark.integration

PREDICTIONS = 1500
WINDOW = 300
# predictions sent before the SIGTERM: not a multiple of WINDOW, so once the service has applied
# all of them a window is still open (the rest is sent after the SIGTERM)
BEFORE_SIGTERM = 1150


def _db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def _open_window(path: Path) -> int:
    with _db(path) as conn:
        row = conn.execute(
            "SELECT COALESCE(SUM(predictions), 0) FROM windows WHERE state = 'open'"
        ).fetchone()
    return int(row[0])


def _applied(path: Path) -> int:
    if not path.exists():
        return 0
    with _db(path) as conn:
        row = conn.execute("SELECT COUNT(*) FROM predictions").fetchone()
    return int(row[0])


def test_restart_mid_window_loses_no_event_and_counts_none_twice(
    streams: Streams, redis_client: redis.Redis, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    model = unique("mon_restart")
    register_with_reference(mlflow_server.url, model, reference_frame(1000), folder=tmp_path)
    data = tmp_path / "data"
    port = free_port()
    service = ServiceProcess(
        service_env(
            data,
            streams,
            port,
            {
                "MLFLOW_TRACKING_URI": mlflow_server.url,
                "MONITORING_MODEL_NAME": model,
                "MONITORING_WINDOW_SIZE": str(WINDOW),
                "MONITORING_WINDOW_SECONDS": "3600",
                "MONITORING_LABEL_GRACE_S": "0",
                "MONITORING_BATCH_SIZE": "50",
                "MONITORING_BLOCK_MS": "100",
                "MONITORING_CONSUMER_NAME": "restart-test-1",
            },
        ),
        port,
        tmp_path / "service.log",
    )
    db = data / "monitoring" / "monitoring.db"
    traffic = Traffic(model_name=model, spacing_s=0.05)
    produced: list[str] = []
    labels = 0
    done = threading.Event()
    paused = threading.Lock()  # held by the test: the producer adds nothing meanwhile
    resume = threading.Event()  # set by the test once the SIGTERM has landed

    def produce() -> None:
        nonlocal labels
        for batch in range(PREDICTIONS // 25):
            if batch * 25 == BEFORE_SIGTERM:
                resume.wait(180)
            events = [e for e, _ in traffic.predictions(25)]
            feedback = [Traffic.feedback(e, i % 3 != 0, delay_s=0.02) for i, e in enumerate(events)]
            with paused:
                streams.add([*events, *feedback])
                produced.extend(e.request_id for e in events)
                labels += len(feedback)
            time.sleep(0.03)
        done.set()

    def quiet_mid_window() -> bool:
        """Pause the producer where the open window cannot fill up: even once the service has
        applied every prediction already sent, the window stays open. Otherwise let the
        producer go on."""
        paused.acquire()
        open_now = _open_window(db)
        backlog = len(produced) - _applied(db)
        if open_now > 0 and open_now + backlog < WINDOW:
            return True
        paused.release()
        return False

    service.start()
    producer = threading.Thread(target=produce, daemon=True)
    try:
        producer.start()
        # 1) SIGKILL in the middle of a window, while events keep arriving
        assert wait_for(
            lambda: _applied(db) >= 400 and 0 < _open_window(db) < WINDOW - 20,
            timeout=60,
            interval=0.05,
        )
        assert service.kill(signal.SIGKILL) == -signal.SIGKILL
        at_kill = _applied(db)
        in_window = _open_window(db)
        assert 0 < in_window < WINDOW, "the kill must land inside a window"
        time.sleep(1.0)  # events arrive while it is down
        service.start()
        # 2) SIGTERM in the middle of another window: the producer is paused once the service
        # has caught up inside a window, so no batch can close that window before the signal
        assert wait_for(lambda: _applied(db) >= at_kill + 300, timeout=60, interval=0.05)
        assert wait_for(quiet_mid_window, timeout=90, interval=0.05)
        try:
            # uvicorn re-raises the signal after its clean shutdown: the exit status is -15
            assert service.kill(signal.SIGTERM) == -signal.SIGTERM
        finally:
            paused.release()
            resume.set()
        shutdown = (tmp_path / "service.log").read_text()
        assert "consumer stopped after" in shutdown
        assert "Application shutdown complete" in shutdown
        assert 0 < _open_window(db) < WINDOW
        time.sleep(0.5)
        service.start()
        assert done.wait(120), "the producer did not finish"
        assert wait_for(lambda: _applied(db) == PREDICTIONS, timeout=60), _applied(db)
        text: str = ""

        def counted() -> Any:
            nonlocal text
            import urllib.request

            with urllib.request.urlopen(f"{service.url}/metrics", timeout=10) as answer:
                text = answer.read().decode()
            consumed = metric_values(text, "monitoring_events_consumed_total")
            return consumed.get((("type", "feedback"),)) == labels

        assert wait_for(counted, timeout=30)
    finally:
        resume.set()
        service.stop()
        done.wait(60)

    consumed = metric_values(text, "monitoring_events_consumed_total")
    assert consumed[(("type", "prediction"),)] == PREDICTIONS  # restored across restarts
    with _db(db) as conn:
        windows = conn.execute(
            "SELECT predictions, rows, state FROM windows ORDER BY window_id"
        ).fetchall()
        twice = conn.execute(
            "SELECT request_id FROM predictions GROUP BY request_id HAVING COUNT(*) > 1"
        ).fetchall()
        stored = {r for (r,) in conn.execute("SELECT request_id FROM predictions")}
        feedback = conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
        counters = dict(conn.execute("SELECT name || '/' || label, value FROM counters").fetchall())
    # every window is exactly full: nothing lost, nothing counted twice
    assert [w[0] for w in windows] == [WINDOW] * (PREDICTIONS // WINDOW)
    assert [w[1] for w in windows] == [WINDOW * 5] * (PREDICTIONS // WINDOW)
    assert twice == []
    assert stored == set(produced) and len(produced) == PREDICTIONS
    assert feedback == labels
    assert counters["events_consumed/prediction"] == PREDICTIONS
    assert counters["events_consumed/feedback"] == labels
    # redeliveries happened (the kill left entries unacknowledged) and were recognised
    for stream in (streams.predictions, streams.feedback):
        info: Any = redis_client.xpending(stream, "monitoring")
        assert info["pending"] == 0
    log = (tmp_path / "service.log").read_text()
    assert log.count("consuming ") == 3  # three service lifetimes
