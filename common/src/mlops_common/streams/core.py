"""The consumer core: the claim / acknowledge / dead-letter loop every stream consumer shares.

Delivery is at-least-once (a Redis consumer group); a component makes the *effect* exactly once
by acknowledging an entry only in the same atomic step that records its effect (its
``BatchHandler.process``). The core never knows what the entries mean. It runs the loop:

1. On start, and after any error: create the group on every stream (``BUSYGROUP`` tolerated; a
   broker that lost the group, ``NOGROUP``, gets it back), process this consumer's own pending
   entries (a restarted consumer with the same name resumes where it stopped), then take over
   entries any consumer has held longer than ``claim_min_idle_ms`` (``XAUTOCLAIM``; repeated
   every ``claim_interval_s``; entries trimmed from the stream meanwhile are passed on as
   trimmed entries, so they are counted and acknowledged like the others).
2. Read new entries of every stream with one ``XREADGROUP`` and hand them to the handler as one
   batch; then ``handler.after_read`` (the component's periodic work) and, every
   ``gauge_interval_s``, the lag and pending gauges of every stream.
3. Any error: counted, logged, retried with exponential backoff (``backoff_initial_s`` doubling
   up to ``backoff_max_s``; tenacity), never an exit. ``stop`` (SIGTERM), ``max_entries``,
   ``duration`` and ``idle_exit_s`` end the loop; ``handler.finish`` runs once at the end.

The retry bound: nothing is retried forever. An entry delivered before (in a batch that failed,
to a consumer that died, or taken over from one) is tried on its own, so one entry that cannot
be processed holds back no other, and its delivery is counted just before it is tried (the
broker's delivery count, ``XPENDING``; entries waiting behind one that kills the process are not
counted). When it fails alone for the ``max_deliveries``-th time, or comes back more often than
that without ever being acknowledged (consumers die on it), the core hands it to the handler
*refused* (``Entry.refused``, with the last error): the handler dead-letters and acknowledges it
instead of applying it. Failures that are not the entry's fault do not count: after a
*transient* error (the broker or a store unreachable: ``TRANSIENT_ERRORS``, or the component's
own list) the pending entries are read again without counting a delivery and retried as one
batch. ``max_deliveries`` is at least 2: an entry of a batch that failed gets one more attempt
on its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import redis
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

from mlops_common.redis import redact
from mlops_common.streams.config import Bounds, ConsumerConfig, ConsumerStats
from mlops_common.streams.entries import Entry, dead_letter
from mlops_common.streams.group import StreamGroup
from mlops_common.streams.handler import TRANSIENT_ERRORS, BatchHandler, OwnershipLost, describe
from mlops_common.streams.metrics import NullStreamMetrics, StreamMetrics

_MAX_REMEMBERED_FAILURES = 10_000


def _group_lost(exc: BaseException) -> bool:
    """The broker lost the stream or the group (a restart without persistence, a deletion):
    ``NOGROUP``, or a blocked read ended because the stream was deleted."""
    message = str(exc)
    return isinstance(exc, redis.ResponseError) and (
        "NOGROUP" in message or "no longer exists" in message
    )


class ConsumerCore:
    """Runs one consumer of a group: reads, claims, retries; the handler applies and commits."""

    def __init__(
        self,
        client: redis.Redis,
        config: ConsumerConfig,
        handler: BatchHandler,
        *,
        metrics: StreamMetrics | None = None,
        stop: threading.Event | None = None,
        log: logging.Logger | None = None,
        clock: Callable[[], float] = time.time,
        transient: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
        stats: ConsumerStats | None = None,
    ) -> None:
        self.config = config
        self.handler = handler
        self.metrics: StreamMetrics = metrics or NullStreamMetrics()
        self.stop = stop or threading.Event()
        self.log = log or logging.getLogger("mlops_common.streams")
        self.clock = clock
        self.transient = transient
        self.group = StreamGroup(
            client,
            config.streams,
            config.group,
            config.consumer,
            start_id=config.start_id,
            batch_size=config.batch_size,
            log=self.log,
        )
        self.stats = stats if stats is not None else ConsumerStats()
        #: None before the first loop iteration, then whether the last one succeeded
        self.up: bool | None = None
        self.last_error: str | None = None
        self._recovering = True
        self._count_redeliveries = True  # a start may follow a crash: its re-reads count
        self._failures: dict[tuple[str, str], str] = {}
        self._last_claim = 0.0
        self._last_gauges = 0.0
        self._last_entry = time.monotonic()
        self._wait = wait_exponential(multiplier=config.backoff_initial_s, max=config.backoff_max_s)

    # --- what handlers use ---------------------------------------------------------------------
    def dead_letter(self, entry: Entry, reason: str) -> dict[str, str]:
        """The dead letter of ``entry`` (the shape of ``entries.dead_letter``), now."""
        c = self.config
        return dead_letter(entry, reason, group=c.group, consumer=c.consumer, at=self.clock())

    def acknowledge(
        self, entries: Sequence[Entry], dead_letters: Sequence[dict[str, str]] = ()
    ) -> None:
        """Dead letters and acknowledgement of a batch in one ``MULTI``."""
        self.group.acknowledge(
            entries,
            dead_letters,
            dead_letter_stream=self.config.dead_letter_stream,
            dead_letter_maxlen=self.config.dead_letter_maxlen,
        )

    # --- processing ----------------------------------------------------------------------------
    def process(self, entries: Sequence[Entry]) -> None:
        """Commit a batch through the handler (new entries: one batch, as read)."""
        self._commit(entries)

    def _commit(self, entries: Sequence[Entry]) -> None:
        started = time.perf_counter()
        try:
            self.handler.process(entries)
        except OwnershipLost as exc:
            self.stats.aborted_batches += 1
            self.metrics.on_aborted()
            self.log.warning("%s", exc)
            return
        st = self.stats
        st.consumed += len(entries)
        st.batches += 1
        st.trimmed += sum(1 for e in entries if e.trimmed)
        st.exhausted += sum(1 for e in entries if e.refused is not None)
        self.metrics.on_batch(len(entries), time.perf_counter() - started)
        if self._failures:
            for entry in entries:
                self._failures.pop((entry.stream, entry.id), None)
        self._last_entry = time.monotonic()

    def _attempt(self, entry: Entry, failures: list[Exception]) -> None:
        """An entry delivered before, on its own and under the retry bound: a failure that is
        the entry's own leaves it pending (its error appended to ``failures``, raised by the
        caller once every other entry was tried) or, at the bound, dead-letters it."""
        bounded = self._bounded(entry)
        try:
            self._commit([bounded])
        except self.transient:
            raise
        except Exception as exc:
            if not self._failed_alone(bounded, exc):
                failures.append(exc)

    def _bounded(self, entry: Entry) -> Entry:
        """The entry, refused when it came back more than ``max_deliveries`` times."""
        bound = self.config.max_deliveries
        if entry.deliveries <= bound:
            return entry
        last = self._failures.get(
            (entry.stream, entry.id), "none seen by this process (did a consumer die on it?)"
        )
        return entry.refuse(
            f"not acknowledged after {entry.deliveries - 1} deliveries (max_deliveries "
            f"{bound}); last error: {last}"
        )

    def _failed_alone(self, entry: Entry, exc: Exception) -> bool:
        """Remember why the entry failed; at the retry bound, dead-letter it now. True when it
        was dead-lettered."""
        error = describe(exc)
        bound = self.config.max_deliveries
        if len(self._failures) >= _MAX_REMEMBERED_FAILURES:
            self._failures.clear()
        self._failures[(entry.stream, entry.id)] = error
        self.log.warning(
            "entry %s of %s failed (delivery %d of at most %d): %s",
            entry.id,
            entry.stream,
            entry.deliveries,
            bound,
            error,
        )
        if entry.refused is not None or entry.deliveries < bound:
            return False
        reason = f"processing failed {entry.deliveries} times (max_deliveries {bound}): {error}"
        self._commit([entry.refuse(reason)])
        return True

    # --- recovery ------------------------------------------------------------------------------
    def recover(self) -> None:
        """Group, own pending entries, idle entries of others (step 1 of the module docstring)."""
        self.group.ensure()
        self.drain_own_pending(counted=self._count_redeliveries)
        self.claim_idle()
        self._recovering = False

    def drain_own_pending(self, *, counted: bool = True) -> int:
        """Process the entries delivered to this consumer name and never acknowledged.

        ``counted`` (on start, and after a failure that may be an entry's fault): each entry on
        its own, delivered again just before it is tried (its count goes up then, so entries
        waiting behind one that kills the process are not counted). Otherwise (after a
        transient failure) the entries are read again without counting, as one batch."""
        total = 0
        failures: list[Exception] = []
        for stream in self.config.streams:
            after: str | None = None
            while not self.stop.is_set():
                pending = self.group.own_pending(stream, after)
                if not pending:
                    break
                if counted:
                    for entry_id in pending:
                        if self.stop.is_set():
                            break
                        self._attempt(self.group.redeliver(stream, entry_id), failures)
                else:
                    self._commit([self._bounded(e) for e in self.group.fetch(stream, pending)])
                total += len(pending)
                after = list(pending)[-1]
        if total:
            self.log.info("re-processed %d pending entries of %s", total, self.config.consumer)
        if failures:
            raise failures[0]
        return total

    def claim_idle(self) -> int:
        """Take over entries held longer than ``claim_min_idle_ms`` (by any consumer); each is
        tried on its own (it was delivered before)."""
        total = 0
        failures: list[Exception] = []
        for stream in self.config.streams:
            cursor = "0-0"
            while not self.stop.is_set():
                cursor, claimed, deleted = self.group.claim_idle(
                    stream, cursor, self.config.claim_min_idle_ms
                )
                if deleted:
                    self.log.warning(
                        "%d claimed entries of %s had been trimmed from the stream",
                        len(deleted),
                        stream,
                    )
                    self._commit([Entry(stream, entry_id, None) for entry_id in deleted])
                if claimed:
                    total += len(claimed)
                    self.stats.claimed += len(claimed)
                    self.metrics.on_claimed(stream, len(claimed))
                    self.log.info("claimed %d idle entries of %s", len(claimed), stream)
                    for entry in claimed:
                        self._attempt(entry, failures)
                if cursor in ("0-0", "0"):
                    break
        self._last_claim = time.monotonic()
        if failures:
            raise failures[0]
        return total

    def update_gauges(self) -> None:
        """Lag and pending of the group on every stream, then the handler's own gauges."""
        for stream in self.config.streams:
            state = self.group.state(stream)
            if state is not None:
                self.metrics.on_group_state(stream, state.lag, state.pending)
        self.handler.refresh_gauges()
        self._last_gauges = time.monotonic()

    # --- the loop ------------------------------------------------------------------------------
    def run(
        self,
        *,
        max_entries: int | None = None,
        duration: float | None = None,
        idle_exit_s: float | None = None,
    ) -> ConsumerStats:
        """Consume until ``stop`` is set, or a bound is reached: ``max_entries`` consumed,
        ``duration`` seconds, ``idle_exit_s`` seconds without an entry committed."""
        c = self.config
        bounds = Bounds(time.monotonic(), max_entries, duration, idle_exit_s)
        self._last_entry = bounds.started
        self.log.info(
            "consuming %s on %s as %s/%s (batch %d)",
            " and ".join(c.streams),
            redact(c.broker_url),
            c.group,
            c.consumer,
            c.batch_size,
        )
        retrying = Retrying(
            retry=retry_if_exception_type(Exception),
            wait=self._wait,
            stop=lambda _: self._done(bounds),
            sleep=self._pause,
            after=self._failed,
            retry_error_callback=lambda _: None,
        )
        while not self._done(bounds):
            retrying(self._iteration)
        self.handler.finish()
        self.stats.elapsed_s = round(time.monotonic() - bounds.started, 3)
        return self.stats

    def _done(self, bounds: Bounds) -> bool:
        now = time.monotonic()
        return (
            self.stop.is_set()
            or (bounds.duration is not None and now - bounds.started >= bounds.duration)
            or (bounds.max_entries is not None and self.stats.consumed >= bounds.max_entries)
            or (bounds.idle_exit_s is not None and now - self._last_entry >= bounds.idle_exit_s)
        )

    def _iteration(self) -> None:
        if self._recovering:
            self.recover()
        elif time.monotonic() - self._last_claim >= self.config.claim_interval_s:
            self.claim_idle()
        read = self.group.read_new(self.config.block_ms, self.clock)
        if read.entries:
            self.process(read.entries)
        self.handler.after_read(read)
        if time.monotonic() - self._last_gauges >= self.config.gauge_interval_s:
            self.update_gauges()
        self._set_up(True, None)

    def _pause(self, seconds: float) -> None:
        """The backoff's sleep: cut short by ``stop``."""
        self.stop.wait(seconds)

    def _failed(self, state: RetryCallState) -> None:
        """An iteration failed: count it, and recover before the next one (after the backoff)."""
        exc = state.outcome.exception() if state.outcome is not None else None
        if exc is None:
            return
        self.stats.errors += 1
        self.metrics.on_error(type(exc).__name__)
        self._set_up(False, describe(exc))
        self._recovering = True
        self._count_redeliveries = not isinstance(exc, self.transient)
        if _group_lost(exc):
            self.log.warning(
                "consumer group %s is gone (broker restart?): recreating", self.config.group
            )
        self.log.warning(
            "consumer iteration failed (%s); retrying pending entries in %.2f s",
            describe(exc),
            self._wait(state),
        )

    def _set_up(self, up: bool, error: str | None) -> None:
        self.up = up
        if error:
            self.last_error = error
        self.metrics.on_up(up)
