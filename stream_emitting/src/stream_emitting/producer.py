"""The producer: driver statistics events to a Redis stream, at a steady rate, through outages.

Each tick it emits the events that are due (``rate`` per second), each one driver's statistics
now (the example world's ``DriverWorld``, ``example_project.world.drivers``), as one
``MULTI``/``EXEC`` of ``XADD <stream> MAXLEN ~ <maxlen>``.

Broker outages: every Redis error is caught, counted (``retries``), logged with the next wait,
and the same batch (same event ids) is retried with exponential backoff and jitter
(``backoff_initial`` doubling to ``backoff_max``). The producer never exits because of the
broker. A batch whose ``EXEC`` reached Redis but whose reply was lost is written twice; that is
why events carry an ``event_id`` and the consumer de-duplicates on it. After an outage the
schedule restarts from now: missed ticks are not made up in a burst of stale events.

Scenario ``dirty``: a fraction ``dirty_rate`` of the events is emitted malformed, one defect each
(``DEFECTS``), and a fraction ``duplicate_rate`` of the valid events is emitted twice (same
``event_id``): the consumer must dead-letter the former and apply the latter once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import numpy as np
import redis
from prometheus_client import CollectorRegistry, Counter, Gauge

from example_project.world.config import Scenario
from example_project.world.drivers import DriverWorld
from mlops_common.events.driver_stats import DriverStatsEvent
from mlops_common.prometheus import Metric, MetricSet
from mlops_common.redis import connect, redact
from mlops_common.streams import RunStats
from stream_emitting.settings import ProducerSettings

log = logging.getLogger("stream_emitting.producer")

#: The defects of the dirty scenario: name -> how the encoded fields are broken.
DEFECTS: tuple[str, ...] = (
    "out_of_range",
    "missing_field",
    "not_a_number",
    "naive_timestamp",
    "unknown_schema_version",
    "unknown_field",
)

_OUT_OF_RANGE = (
    ("conv_rate", "1.37"),
    ("acc_rate", "-0.2"),
    ("avg_daily_trips", "-3"),
    ("rating", "5.6"),
    ("rating", "0.5"),
    ("cancel_rate", "2.0"),
)

#: Most entries written in one round trip.
MAX_BATCH = 500


def corrupt(fields: dict[str, str], defect: str, rng: np.random.Generator) -> dict[str, str]:
    """A copy of an encoded valid event with one defect (see ``DEFECTS``)."""
    broken = dict(fields)
    if defect == "out_of_range":
        column, value = _OUT_OF_RANGE[int(rng.integers(len(_OUT_OF_RANGE)))]
        broken[column] = value
    elif defect == "missing_field":
        del broken[str(rng.choice(["conv_rate", "rating", "event_timestamp", "driver_id"]))]
    elif defect == "not_a_number":
        broken[str(rng.choice(["conv_rate", "avg_daily_trips", "cancel_rate"]))] = "n/a"
    elif defect == "naive_timestamp":
        broken["event_timestamp"] = broken["event_timestamp"].removesuffix("Z")
    elif defect == "unknown_schema_version":
        broken["schema_version"] = "99"
    elif defect == "unknown_field":
        broken["surge_multiplier"] = "1.5"
    else:
        raise ValueError(f"unknown defect {defect!r}")
    return broken


@dataclass
class ProducerStats(RunStats):
    """What a producer run did. ``written`` counts stream entries (every kind)."""

    written: int = 0
    valid: int = 0
    malformed: int = 0
    duplicates: int = 0
    retries: int = 0
    outages: int = 0
    dropped_on_stop: int = 0
    elapsed_s: float = 0.0


class _Metrics(MetricSet):
    events: Annotated[
        Counter,
        Metric(
            "stream_producer_events",
            "Stream entries written by the producer, by kind (valid, malformed, duplicate).",
            ("kind",),
        ),
    ]
    retries: Annotated[
        Counter,
        Metric(
            "stream_producer_retries",
            "Failed attempts to write to the broker (each is retried with backoff).",
        ),
    ]
    connected: Annotated[
        Gauge,
        Metric(
            "stream_producer_connected",
            "1 when the last write to the broker succeeded, else 0.",
        ),
    ]
    rate: Annotated[
        Gauge,
        Metric(
            "stream_producer_target_rate",
            "Configured events per second.",
        ),
    ]


@dataclass(frozen=True)
class _Entry:
    kind: str  # valid | malformed | duplicate
    fields: dict[str, str]


class Producer:
    """Writes driver statistics events to the stream; see the module docstring."""

    def __init__(
        self,
        settings: ProducerSettings,
        *,
        stop: threading.Event | None = None,
        registry: CollectorRegistry | None = None,
        client: redis.Redis | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self.metrics = _Metrics(registry or CollectorRegistry())  # process_cpu_seconds_total, ...
        self.registry = self.metrics.registry
        self.metrics.rate.set(settings.rate)
        self.client = client or connect(settings.broker_url)
        self.clock = clock
        self.producer_id = settings.producer_id or uuid.uuid4().hex[:12]
        self.world = DriverWorld(
            settings.seed,
            settings.driver_id_min,
            settings.driver_id_max,
            settings.scenario,
            settings.drift_start,
        )
        # the random stream of the per-event noise, driver choice and defects: fresh per process
        self.rng = np.random.default_rng()
        self.seq = 0
        self.stats = ProducerStats()
        self._duplicates: list[_Entry] = []
        self._jitter = random.Random()

    # -- events ---------------------------------------------------------------------------
    def make_entries(self, count: int, now: datetime | None = None) -> list[_Entry]:
        """``count`` entries due now; a pending duplicate of an earlier event counts as one."""
        s = self.settings
        at = now or datetime.now(UTC)
        drivers = self.rng.integers(s.driver_id_min, s.driver_id_max + 1, size=count)
        values = self.world.sample(drivers, at, self.rng)
        dirty = s.scenario == Scenario.DIRTY
        # a duplicate goes out with the next entries: a re-delivery shortly after the original
        entries: list[_Entry] = self._duplicates[:count]
        del self._duplicates[:count]
        for i in range(count):
            if len(entries) >= count:
                break
            self.seq += 1
            event = DriverStatsEvent(
                event_id=f"{self.producer_id}:{self.seq}",
                driver_id=int(drivers[i]),
                event_timestamp=at,
                conv_rate=float(values["conv_rate"][i]),
                acc_rate=float(values["acc_rate"][i]),
                avg_daily_trips=int(values["avg_daily_trips"][i]),
                rating=float(values["rating"][i]),
                cancel_rate=float(values["cancel_rate"][i]),
                produced_at=at,
            )
            fields = event.encode()
            if dirty and self.rng.random() < s.dirty_rate:
                defect = DEFECTS[int(self.rng.integers(len(DEFECTS)))]
                entries.append(_Entry("malformed", corrupt(fields, defect, self.rng)))
                continue
            entries.append(_Entry("valid", fields))
            if dirty and self.rng.random() < s.duplicate_rate:
                self._duplicates.append(_Entry("duplicate", fields))
        return entries

    # -- writing --------------------------------------------------------------------------
    def _write(self, entries: list[_Entry]) -> None:
        s = self.settings
        with self.client.pipeline(transaction=True) as pipe:
            for entry in entries:
                pipe.xadd(s.stream, entry.fields, maxlen=s.maxlen, approximate=True)  # type: ignore[arg-type]
            pipe.execute()

    def write_with_retry(self, entries: list[_Entry]) -> bool:
        """Write ``entries``, retrying through broker errors until written or stopped."""
        wait = self.settings.backoff_initial
        failures = 0
        while True:
            try:
                self._write(entries)
            except redis.RedisError as exc:
                failures += 1
                self.stats.retries += 1
                self.metrics.retries.inc()
                self.metrics.connected.set(0)
                if failures == 1:
                    self.stats.outages += 1
                pause = wait * (0.5 + self._jitter.random())
                log.warning(
                    "broker write failed (%s: %s); retry %d of this batch in %.2f s "
                    "(%d retries so far)",
                    type(exc).__name__,
                    str(exc).strip() or "no detail",
                    failures,
                    pause,
                    self.stats.retries,
                )
                wait = min(wait * 2.0, self.settings.backoff_max)
                if self.stop.wait(pause):
                    self.stats.dropped_on_stop += len(entries)
                    log.warning("stopping: %d unwritten entries dropped", len(entries))
                    return False
                continue
            if failures:
                log.info("broker reachable again after %d failed attempts", failures)
            self.metrics.connected.set(1)
            for entry in entries:
                self.metrics.events.labels(entry.kind).inc()
                if entry.kind == "valid":
                    self.stats.valid += 1
                elif entry.kind == "malformed":
                    self.stats.malformed += 1
                else:
                    self.stats.duplicates += 1
            self.stats.written += len(entries)
            return True

    def run(self, *, max_events: int | None = None, duration: float | None = None) -> ProducerStats:
        """Emit until stopped, ``max_events`` entries are written or ``duration`` s passed."""
        s = self.settings
        started = self.clock()
        interval = 1.0 / s.rate
        next_due = started
        log.info(
            "producing to %s on %s: %.1f events/s, scenario %s, drivers %d-%d, producer id %s",
            s.stream,
            redact(s.broker_url),
            s.rate,
            s.scenario.value,
            s.driver_id_min,
            s.driver_id_max,
            self.producer_id,
        )
        while not self.stop.is_set():
            now = self.clock()
            if duration is not None and now - started >= duration:
                break
            remaining = None if max_events is None else max_events - self.stats.written
            if remaining is not None and remaining <= 0:
                break
            if now < next_due:
                wake = next_due if duration is None else min(next_due, started + duration)
                self.stop.wait(max(0.0, wake - now))
                continue
            if now - next_due > 1.0:  # more than a second behind (an outage): do not burst
                next_due = now
            due = 1 + int((now - next_due) / interval)
            count = min(due, MAX_BATCH, remaining if remaining is not None else MAX_BATCH)
            entries = self.make_entries(count)
            written = self.write_with_retry(entries)
            if not written:
                break
            next_due += count * interval
        self.stats.elapsed_s = round(self.clock() - started, 3)
        log.info("stopped: %s", self.stats.as_dict())
        return self.stats
