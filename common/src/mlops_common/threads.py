"""The background threads of the long-running services: one named daemon thread per worker."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Worker:
    """Runs ``target`` on one named daemon thread: started at most once at a time.

    The owner keeps its own stop signal (an event, a sentinel in a queue) and calls ``join``
    after giving it; a thread still running after ``join`` stays the worker's, so a second
    ``start`` never runs two.
    """

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self._target = target
        self.name = name
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        """True from ``start`` until a ``join`` has seen the thread end."""
        return self._thread is not None

    def start(self) -> bool:
        """Start the thread unless it runs already; True when this call started it."""
        if self._thread is not None:
            return False
        self._thread = threading.Thread(target=self._target, name=self.name, daemon=True)
        self._thread.start()
        return True

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the thread to end; True when none runs any more."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            return False
        self._thread = None
        return True


class Periodic:
    """Calls ``tick`` every ``interval_s`` seconds on a ``Worker`` thread until ``stop``.

    The first call comes one interval after ``start`` (an owner that wants one at once calls
    ``tick`` itself first); ``stop`` sets the stop signal and joins the thread.
    """

    def __init__(self, tick: Callable[[], object], interval_s: float, name: str) -> None:
        self._tick = tick
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._worker = Worker(self._run, name)

    def start(self) -> bool:
        """Start the thread unless it runs already; True when this call started it."""
        return self._worker.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Signal the thread and wait up to ``timeout`` s; True when it no longer runs."""
        self._stop.set()
        return self._worker.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._tick()
