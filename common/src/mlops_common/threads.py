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
