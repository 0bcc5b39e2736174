"""The worker thread: one at a time, joined, kept while it still runs."""

from __future__ import annotations

import threading

from mlops_common.threads import Worker


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
