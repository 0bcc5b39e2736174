"""The worker thread (one at a time, joined, kept while it still runs) and the periodic ticker."""

from __future__ import annotations

import threading
import time

from mlops_common.threads import Periodic, Worker


def test_start_runs_one_named_daemon_thread_at_a_time() -> None:
    release = threading.Event()
    seen: list[threading.Thread] = []

    def body() -> None:
        seen.append(threading.current_thread())
        release.wait(5.0)

    worker = Worker(body, "test-worker")
    assert not worker.started
    assert worker.start() is True
    assert worker.start() is False
    release.set()
    assert worker.join(5.0) is True
    assert not worker.started
    assert len(seen) == 1
    assert seen[0].name == "test-worker"
    assert seen[0].daemon


def test_a_thread_still_running_after_join_stays_the_workers() -> None:
    release = threading.Event()
    worker = Worker(lambda: release.wait(5.0) and None, "stuck")
    worker.start()
    assert worker.join(0.05) is False
    assert worker.started
    assert worker.start() is False
    release.set()
    assert worker.join(5.0) is True
    assert worker.start() is True
    assert worker.join(5.0) is True


def test_join_without_start_is_done() -> None:
    assert Worker(lambda: None, "idle").join(0.0) is True


def test_ticks_every_interval_and_stops() -> None:
    ticks: list[float] = []
    periodic = Periodic(lambda: ticks.append(time.monotonic()), 0.02, "test-periodic")
    assert periodic.start()
    assert not periodic.start()  # a second start does not run a second thread
    deadline = time.monotonic() + 5
    while len(ticks) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert periodic.stop(timeout=2)
    assert len(ticks) >= 3
    seen = len(ticks)
    time.sleep(0.1)
    assert len(ticks) == seen  # no tick after stop
    assert not any(t.name == "test-periodic" for t in threading.enumerate())


def test_first_tick_waits_one_interval() -> None:
    ticks: list[int] = []
    periodic = Periodic(lambda: ticks.append(1), 5.0, "test-periodic-slow")
    periodic.start()
    time.sleep(0.05)
    assert periodic.stop(timeout=2)
    assert ticks == []
