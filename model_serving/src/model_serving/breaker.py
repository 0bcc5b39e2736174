"""A circuit breaker around the online-store read (ADR ``0013-online-store-breaker``).

Closed: reads run (in the read threads, with the request's deadline). The breaker opens when a
read fails, misses its deadline, or *stalls*: a read has been waiting ``stall_s`` while no read
that started after it, or with it, has come back, and another read is waiting too (one slow
read on a loaded host is not a stall; a stopped Redis answers nobody). Opening releases every
request still waiting for a read at once (503). While open, a request is answered 503 at once,
without touching the store, and at most every ``probe_interval_s`` one background ``ping`` (in a
read thread, never a user request) asks whether the store is back; its success, or any read
that comes back, closes the breaker.

Everything here runs on the event loop, except the reads and probes themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger("model_serving.breaker")

T = TypeVar("T")


class BreakerOpen(Exception):
    """The store is considered down (the message says since when and why)."""


@dataclass(frozen=True)
class BreakerLimits:
    #: a read waiting this long with nothing coming back while another read waits: a stall
    stall_s: float = 0.25
    #: seconds between two background probes while open
    probe_interval_s: float = 0.5


@dataclass(eq=False)
class Breaker:
    limits: BreakerLimits = field(default_factory=BreakerLimits)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.open_since: float | None = None
        self.reason = ""
        self.opened = 0
        #: start time of the last read that came back (successfully)
        self._last_back = float("-inf")
        self._waiting: dict[int, float] = {}
        self._released: asyncio.Event | None = None
        self._last_probe = float("-inf")
        self._probe: asyncio.Future[object] | None = None

    @property
    def is_open(self) -> bool:
        return self.open_since is not None

    def describe(self) -> str:
        if self.open_since is None:
            return "closed"
        return f"open for {self.clock() - self.open_since:.1f} s: {self.reason}"

    def trip(self, reason: str) -> None:
        """Open (again); release every waiting request."""
        if self.open_since is None:
            self.open_since, self.reason = self.clock(), reason
            self.opened += 1
            log.warning("online store circuit open: %s", reason)
        if self._released is not None:
            self._released.set()
            self._released = None

    def close(self) -> None:
        if self.open_since is not None:
            log.info("online store circuit closed after %s", self.describe())
        self.open_since = None

    def probe(self, executor: Executor | None, ping: Callable[[], object]) -> None:
        """While open: start a background ``ping`` if none runs and the last is old enough."""
        now = self.clock()
        if self._probe is not None or now - self._last_probe < self.limits.probe_interval_s:
            return
        self._last_probe = now
        probe = asyncio.get_running_loop().run_in_executor(executor, ping)
        self._probe = probe
        probe.add_done_callback(self._probed)

    def _probed(self, probe: asyncio.Future[object]) -> None:
        self._probe = None
        if probe.cancelled() or probe.exception() is not None:
            return
        self.close()

    async def call(self, executor: Executor | None, read: Callable[[], T], deadline_s: float) -> T:
        """``read()`` in ``executor`` within ``deadline_s``; ``BreakerOpen`` when open, or when
        it opens (failure, deadline, stall) while this read waits."""
        if self.open_since is not None:
            raise BreakerOpen(self.describe())
        loop = asyncio.get_running_loop()
        started = self.clock()
        future = loop.run_in_executor(executor, read)
        token = id(future)
        self._waiting[token] = started
        future.add_done_callback(lambda done: self._back(token, started, done))
        self._check_stalls(started)
        try:
            return await self._wait(future, started, deadline_s)
        except BreakerOpen:
            raise
        except Exception as exc:
            self.trip(f"{type(exc).__name__}: {exc}")
            raise

    def _back(self, token: int, started: float, done: asyncio.Future[Any]) -> None:
        self._waiting.pop(token, None)
        if done.cancelled() or done.exception() is not None:
            return  # retrieved: no "never retrieved" warning for abandoned reads
        self._last_back = max(self._last_back, started)
        self.close()

    def _check_stalls(self, now: float) -> None:
        """Trip when the oldest waiting read has waited ``stall_s`` with nothing back since."""
        if len(self._waiting) < 2:
            return
        oldest = min(self._waiting.values())
        if now - oldest >= self.limits.stall_s and self._last_back < oldest:
            self.trip(f"no read came back for {now - oldest:.3f} s")

    async def _wait(self, future: asyncio.Future[T], started: float, deadline_s: float) -> T:
        stall = min(self.limits.stall_s, deadline_s)
        done, _ = await asyncio.wait({future}, timeout=stall)
        if done:
            return future.result()
        self._check_stalls(self.clock())
        if self.open_since is not None:
            raise BreakerOpen(self.describe())
        if self._released is None:
            self._released = asyncio.Event()
        released: asyncio.Future[Any] = asyncio.ensure_future(self._released.wait())
        try:
            remaining = max(0.0, deadline_s - (self.clock() - started))
            waited: set[asyncio.Future[Any]] = {future, released}
            done_any, _ = await asyncio.wait(
                waited, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            released.cancel()
        done = {d for d in done_any if d is future}
        if future in done:
            return future.result()
        if self.open_since is None:
            self.trip(f"a read missed its {deadline_s} s deadline")
        raise BreakerOpen(self.describe())


class Breakers:
    """One breaker per online-store reader (a reader is one store connection)."""

    def __init__(self, limits: BreakerLimits | None = None) -> None:
        self.limits = limits or BreakerLimits()
        self._by: weakref.WeakKeyDictionary[object, Breaker] = weakref.WeakKeyDictionary()

    def of(self, reader: object) -> Breaker:
        found = self._by.get(reader)
        if found is None:
            found = self._by[reader] = Breaker(self.limits)
        return found
