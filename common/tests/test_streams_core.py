"""The consumer core against the machine's real Redis (keys of each test's own): one read over
several streams, own pending entries after a restart, takeover of idle entries, trimmed
entries, the retry bound (poison pills dead-lettered, transient failures not counted), the
lost group, the loop's bounds and backoff, the gauges and the dead-letter shape.

The handler is a recording one (what a batch means is the components' business; their suites
run the core with their real handlers)."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import redis

from mlops_common.streams import (
    ConsumerConfig,
    ConsumerCore,
    Entry,
    NullStreamMetrics,
    OwnershipLost,
    ReadResult,
    dead_letter,
)

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("MLOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class Handler:
    """Applies entries by recording their ``n`` field; dead-letters entries without one (and
    refused ones); raises for values in ``poison`` (a data error) and for the next
    ``outages`` batches (a broker outage)."""

    def __init__(self, core_of: Any = None) -> None:
        self.core: ConsumerCore | None = None
        self.applied: list[str] = []
        self.batches: list[list[Entry]] = []
        self.poison: set[str] = set()
        self.outages = 0
        self.lose_ownership = 0
        self.reads: list[ReadResult] = []
        self.finished = 0
        self.gauge_calls = 0

    def process(self, entries: Sequence[Entry]) -> None:
        assert self.core is not None
        self.batches.append(list(entries))
        if self.outages:
            self.outages -= 1
            raise redis.ConnectionError("broker unreachable (test)")
        if self.lose_ownership:
            self.lose_ownership -= 1
            raise OwnershipLost("taken over (test)")
        letters, applied = [], []
        for entry in entries:
            if entry.fields is None:
                continue
            value = entry.fields.get(b"n")
            if entry.refused is not None:
                letters.append(self.core.dead_letter(entry, entry.refused))
            elif value is None:
                letters.append(self.core.dead_letter(entry, "no n"))
            elif value.decode() in self.poison:
                raise ValueError(f"cannot apply {value.decode()}")
            else:
                applied.append(value.decode())
        self.core.acknowledge(entries, letters)
        self.applied.extend(applied)

    def after_read(self, read: ReadResult) -> None:
        self.reads.append(read)

    def refresh_gauges(self) -> None:
        self.gauge_calls += 1

    def finish(self) -> None:
        self.finished += 1


class Gauges(NullStreamMetrics):
    def __init__(self) -> None:
        self.state: dict[str, tuple[int | None, int]] = {}
        self.errors: list[str] = []
        self.claimed = 0
        self.batches = 0
        self.ups: list[bool] = []
        self.aborted = 0

    def on_group_state(self, stream: str, lag: int | None, pending: int) -> None:
        self.state[stream] = (lag, pending)

    def on_error(self, error: str) -> None:
        self.errors.append(error)

    def on_claimed(self, stream: str, count: int) -> None:
        self.claimed += count

    def on_batch(self, entries: int, seconds: float) -> None:
        self.batches += 1

    def on_up(self, up: bool) -> None:
        self.ups.append(up)

    def on_aborted(self) -> None:
        self.aborted += 1


@pytest.fixture
def client(redis_client: redis.Redis) -> redis.Redis:
    """The session's client of the real Redis (the mlops_testing plugin's)."""
    return redis_client


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    name = f"test:streams:{uuid.uuid4().hex[:12]}"
    yield name
    keys = list(client.scan_iter(match=f"{name}*", count=1000))
    if keys:
        client.delete(*keys)


def config(prefix: str, **overrides: Any) -> ConsumerConfig:
    values: dict[str, Any] = {
        "streams": (f"{prefix}:a", f"{prefix}:b"),
        "group": "g",
        "consumer": "c1",
        "dead_letter_stream": f"{prefix}:dead",
        "block_ms": 50,
        "batch_size": 10,
        "max_deliveries": 3,
        "backoff_initial_s": 0.02,
        "backoff_max_s": 0.05,
        "broker_url": REDIS_URL,
    }
    values.update(overrides)
    return ConsumerConfig(**values)


def make(
    client: redis.Redis, prefix: str, handler: Handler | None = None, **overrides: Any
) -> tuple[ConsumerCore, Handler, Gauges]:
    handler = handler or Handler()
    metrics = Gauges()
    core = ConsumerCore(client, config(prefix, **overrides), handler, metrics=metrics)
    handler.core = core
    return core, handler, metrics


def add(client: redis.Redis, stream: str, *values: str | None) -> list[str]:
    ids = []
    for value in values:
        fields = {"n": value} if value is not None else {"other": "x"}
        ids.append(client.xadd(stream, fields).decode())  # type: ignore[arg-type, union-attr]
    return ids


def pending(client: redis.Redis, stream: str) -> int:
    info: Any = client.xpending(stream, "g")
    return int(info["pending"])


def letters(client: redis.Redis, stream: str) -> list[dict[str, str]]:
    raw: Any = client.xrange(stream)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in raw]


# --- reading and committing -----------------------------------------------------------------


def test_both_streams_are_read_together_applied_and_acknowledged(
    client: redis.Redis, prefix: str
) -> None:
    core, handler, metrics = make(client, prefix, batch_size=4)
    add(client, f"{prefix}:a", *[f"a{i}" for i in range(6)])
    add(client, f"{prefix}:b", "b0", None)
    stats = core.run(idle_exit_s=0.3)
    assert sorted(handler.applied) == sorted([f"a{i}" for i in range(6)] + ["b0"])
    assert len(handler.applied) == 7  # each once
    # the first read took 4 of a and both of b in one XREADGROUP: one batch, not drained
    assert {e.stream for e in handler.batches[0]} == {f"{prefix}:a", f"{prefix}:b"}
    assert not handler.reads[0].drained and handler.reads[-1].drained
    assert stats.consumed == 8 and stats.batches == 2 and stats.errors == 0
    assert pending(client, f"{prefix}:a") == 0 and pending(client, f"{prefix}:b") == 0
    [letter] = letters(client, f"{prefix}:dead")
    assert letter["reason"] == "no n" and letter["source_stream"] == f"{prefix}:b"
    assert handler.finished == 1 and metrics.batches == 2 and metrics.ups[-1] is True


def test_the_dead_letter_shape() -> None:
    entry = Entry("s", "1-0", {b"data": b"\xff{", b"k": "v"}, deliveries=4)
    letter = dead_letter(entry, "bad \udc80 text", group="g", consumer="c", at=0.0)
    assert set(letter) == {
        "reason",
        "source_stream",
        "source_id",
        "group",
        "consumer",
        "deliveries",
        "dead_at",
        "original",
    }
    assert letter["reason"] == "bad \\udc80 text"  # encodable: the broker client accepts it
    assert letter["deliveries"] == "4" and letter["dead_at"] == "1970-01-01T00:00:00.000000Z"
    assert json.loads(letter["original"]) == {"data": "\\xff{", "k": "v"}


def test_a_restarted_consumer_resumes_its_own_pending_entries(
    client: redis.Redis, prefix: str
) -> None:
    add(client, f"{prefix}:a", "1", "2", "3")
    died, _, _ = make(client, prefix)
    died.group.ensure()
    assert len(died.group.read_new(None).entries) == 3  # delivered, then the process died
    core, handler, _ = make(client, prefix)  # same consumer name
    stats = core.run(idle_exit_s=0.3)
    assert sorted(handler.applied) == ["1", "2", "3"]
    # delivered before: one at a time, each on its second delivery
    assert [[e.deliveries for e in b] for b in handler.batches] == [[2], [2], [2]]
    assert stats.batches == 3 and pending(client, f"{prefix}:a") == 0


def test_idle_entries_of_another_consumer_are_claimed_and_trimmed_ones_counted(
    client: redis.Redis, prefix: str
) -> None:
    ids = add(client, f"{prefix}:a", "1", "2", "3", "4")
    gone, _, _ = make(client, prefix, consumer="gone")
    gone.group.ensure()
    gone.group.read_new(None)
    client.xdel(f"{prefix}:a", ids[0])  # trimmed while it was pending
    time.sleep(0.15)
    core, handler, metrics = make(client, prefix, claim_min_idle_ms=100)
    stats = core.run(idle_exit_s=0.3)
    assert sorted(handler.applied) == ["2", "3", "4"]
    assert stats.claimed == 3 and metrics.claimed == 3
    assert stats.trimmed == 1 and stats.consumed == 4
    assert pending(client, f"{prefix}:a") == 0


def test_a_commit_that_lost_ownership_is_counted_not_retried(
    client: redis.Redis, prefix: str
) -> None:
    core, handler, metrics = make(client, prefix)
    handler.lose_ownership = 1
    add(client, f"{prefix}:a", "1")
    stats = core.run(idle_exit_s=0.3)
    assert stats.aborted_batches == 1 and metrics.aborted == 1 and stats.errors == 0
    assert handler.applied == []  # left to the consumer that took it over


# --- the retry bound ---------------------------------------------------------------------------


def test_a_poison_entry_is_dead_lettered_after_max_deliveries_and_the_others_applied(
    client: redis.Redis, prefix: str
) -> None:
    core, handler, metrics = make(client, prefix, max_deliveries=3)
    handler.poison = {"bad"}
    ids = add(client, f"{prefix}:a", "1", "bad", "2", "3")
    stats = core.run(idle_exit_s=1.0)
    assert sorted(handler.applied) == ["1", "2", "3"]
    attempts = [b for b in handler.batches if any(e.id == ids[1] for e in b)]
    # in its batch, then alone on its 2nd and 3rd delivery, then refused (dead-lettered)
    assert [[(e.deliveries, e.refused is not None) for e in b if e.id == ids[1]] for b in attempts][
        -2:
    ] == [[(3, False)], [(3, True)]]
    assert len(attempts) == 4
    [letter] = letters(client, f"{prefix}:dead")
    assert letter["source_id"] == ids[1] and letter["deliveries"] == "3"
    assert letter["reason"] == (
        "processing failed 3 times (max_deliveries 3): ValueError: cannot apply bad"
    )
    assert json.loads(letter["original"]) == {"n": "bad"}
    assert stats.exhausted == 1 and pending(client, f"{prefix}:a") == 0
    assert metrics.errors == ["ValueError", "ValueError"]  # the batch, then the 2nd delivery


def test_a_failing_entry_does_not_hold_back_the_pending_entries_behind_it(
    client: redis.Redis, prefix: str
) -> None:
    """After a crash, every pending entry is tried in the first drain, page after page, even
    when one of the first fails: none waits (its delivery count rising) behind the poison."""
    add(client, f"{prefix}:a", "bad", *[str(i) for i in range(7)])
    died, _, _ = make(client, prefix, batch_size=3)
    died.group.ensure()
    for _ in range(3):
        died.group.read_new(None)  # all eight delivered, then the process died
    core, handler, _ = make(client, prefix, batch_size=3, max_deliveries=4)
    handler.poison = {"bad"}
    core.run(idle_exit_s=1.0)
    assert sorted(handler.applied) == [str(i) for i in range(7)]
    good = [e for b in handler.batches for e in b if e.fields and e.fields[b"n"] != b"bad"]
    assert {e.deliveries for e in good} == {2}  # each applied at its first attempt
    [letter] = letters(client, f"{prefix}:dead")
    assert letter["deliveries"] == "4"


def test_transient_failures_do_not_count_against_the_entries(
    client: redis.Redis, prefix: str
) -> None:
    core, handler, metrics = make(client, prefix, max_deliveries=2)
    handler.outages = 6  # the broker "down" for more attempts than the retry bound
    add(client, f"{prefix}:a", "1", "2")
    stats = core.run(idle_exit_s=1.5)
    assert sorted(handler.applied) == ["1", "2"]
    assert letters(client, f"{prefix}:dead") == []
    assert stats.errors == 6 and set(metrics.errors) == {"ConnectionError"}
    # every retry read them again without counting a delivery: still one batch, delivery 1
    assert [[e.deliveries for e in b] for b in handler.batches] == [[1, 1]] * 7


def test_an_entry_its_consumers_keep_dying_on_is_refused_without_another_attempt(
    client: redis.Redis, prefix: str
) -> None:
    """A crash loop: every restart redelivers the first pending entry and dies on it. Once it
    came back more than max_deliveries times, never acknowledged and no failure seen, it is
    dead-lettered without another attempt; the entries waiting behind it were not counted by
    those crashes and are applied."""
    entry_id, *_ = add(client, f"{prefix}:a", "boom", "1", "2")
    dying, _, _ = make(client, prefix)
    dying.group.ensure()
    dying.group.read_new(None)  # the batch: the process died in it
    for _ in range(3):  # three restarts that each tried it again and died
        dying.group.redeliver(f"{prefix}:a", entry_id)
    core, handler, _ = make(client, prefix, max_deliveries=3)
    core.run(idle_exit_s=0.3)
    assert sorted(handler.applied) == ["1", "2"]
    assert [[(e.deliveries, e.refused is not None) for e in b] for b in handler.batches] == [
        [(5, True)],
        [(2, False)],
        [(2, False)],
    ]
    [letter] = letters(client, f"{prefix}:dead")
    assert letter["source_id"] == entry_id
    assert letter["reason"].startswith("not acknowledged after 4 deliveries (max_deliveries 3)")


# --- the loop ----------------------------------------------------------------------------------


def test_a_lost_group_is_recreated_and_errors_are_backed_off(
    client: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    core, handler, metrics = make(client, prefix, backoff_initial_s=0.05, backoff_max_s=0.2)
    thread = threading.Thread(target=core.run, kwargs={"duration": 4.0})
    with caplog.at_level(logging.WARNING, logger="mlops_common.streams"):
        thread.start()
        try:
            time.sleep(0.3)
            client.delete(f"{prefix}:a", f"{prefix}:b")
            time.sleep(0.3)
            add(client, f"{prefix}:a", "1")
            deadline = time.monotonic() + 3
            while not handler.applied and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            core.stop.set()
            thread.join(timeout=10)
    assert handler.applied == ["1"]
    assert core.stats.errors >= 1 and "ResponseError" in metrics.errors
    assert "consumer group g is gone (broker restart?): recreating" in caplog.text
    assert core.up is True and "ResponseError" in (core.last_error or "")


def test_backoff_doubles_up_to_its_bound(
    client: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    core, handler, _ = make(client, prefix, backoff_initial_s=0.01, backoff_max_s=0.04)
    handler.outages = 5
    add(client, f"{prefix}:a", "1")
    with caplog.at_level(logging.WARNING, logger="mlops_common.streams"):
        core.run(idle_exit_s=1.0)
    waits = re.findall(r"retrying pending entries in ([0-9.]+) s", caplog.text)
    assert waits == ["0.01", "0.02", "0.04", "0.04", "0.04"]
    assert handler.applied == ["1"]


def test_bounds_end_the_loop(client: redis.Redis, prefix: str) -> None:
    add(client, f"{prefix}:a", *[str(i) for i in range(25)])
    core, handler, _ = make(client, prefix, batch_size=10)
    assert core.run(max_entries=15).consumed == 20  # whole batches
    started = time.monotonic()
    core.run(duration=0.4)
    assert 0.4 <= time.monotonic() - started < 2.0
    core.stop.set()
    started = time.monotonic()
    core.run()
    assert time.monotonic() - started < 0.5
    assert len(handler.applied) == 25 and handler.finished == 3


def test_gauges_report_lag_and_pending_of_every_stream(client: redis.Redis, prefix: str) -> None:
    core, handler, metrics = make(client, prefix, batch_size=3)
    core.group.ensure()
    add(client, f"{prefix}:a", *[str(i) for i in range(5)])
    core.update_gauges()
    assert metrics.state == {f"{prefix}:a": (5, 0), f"{prefix}:b": (0, 0)}
    core.group.read_new(None)
    core.update_gauges()
    assert metrics.state[f"{prefix}:a"] == (2, 3)
    assert handler.gauge_calls == 2
