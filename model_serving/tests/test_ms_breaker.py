"""The online store's circuit breaker (``model_serving.breaker``): a hung store costs one stall
window, not a deadline per request; while open, answers come at once and a background probe,
not a user request, finds the store back; one slow read alone is not a stall."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest

from model_serving.breaker import Breaker, BreakerLimits, BreakerOpen, Breakers

LIMITS = BreakerLimits(stall_s=0.05, probe_interval_s=0.1)
DEADLINE_S = 0.25


def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "rows"


class HungStore:
    """A read that blocks until the store is resumed (a SIGSTOPped Redis), counting calls."""

    def __init__(self) -> None:
        self.resumed = threading.Event()
        self.reads = 0

    def read(self) -> str:
        self.reads += 1
        self.resumed.wait(5)
        return "rows"

    def ping(self) -> str:
        if not self.resumed.is_set():
            raise ConnectionError("no answer")
        return "PONG"


async def timed(breaker: Breaker, pool: ThreadPoolExecutor, call: Any) -> tuple[float, str]:
    began = time.perf_counter()
    try:
        outcome = await breaker.call(pool, call, DEADLINE_S)
    except BreakerOpen:
        outcome = "open"
    return time.perf_counter() - began, outcome


def test_a_hung_store_releases_every_waiting_read_after_one_stall_window() -> None:
    store = HungStore()

    async def scenario() -> list[tuple[float, str]]:
        breaker = Breaker(LIMITS)
        with ThreadPoolExecutor(8) as pool:
            first = asyncio.ensure_future(timed(breaker, pool, store.read))
            await asyncio.sleep(0.02)
            second = asyncio.ensure_future(timed(breaker, pool, store.read))
            results = [await first, await second]
            results.append(await timed(breaker, pool, store.read))  # open: not even read
            store.resumed.set()
            return results

    results = asyncio.run(scenario())
    assert [outcome for _, outcome in results] == ["open", "open", "open"]
    # the deadline (0.25 s) is never waited for: the stall window (0.05 s) and scheduling
    assert max(seconds for seconds, _ in results) < 0.15
    assert results[2][0] < 0.01
    assert store.reads == 2


def test_a_lone_slow_read_is_not_a_stall() -> None:
    async def scenario() -> tuple[float, str, bool]:
        breaker = Breaker(LIMITS)
        with ThreadPoolExecutor(2) as pool:
            seconds, outcome = await timed(breaker, pool, partial(slow, 0.12))
        return seconds, outcome, breaker.is_open

    seconds, outcome, is_open = asyncio.run(scenario())
    assert (outcome, is_open) == ("rows", False)
    assert seconds >= 0.12


def test_a_missed_deadline_and_a_failed_read_open_the_breaker() -> None:
    def refused() -> str:
        raise ConnectionRefusedError("connection refused")

    async def late() -> bool:
        breaker = Breaker(BreakerLimits(stall_s=0.02, probe_interval_s=0.1))
        with ThreadPoolExecutor(2) as pool, pytest.raises(BreakerOpen):
            await breaker.call(pool, partial(slow, 0.3), 0.05)
        return breaker.is_open

    assert asyncio.run(late())

    async def failing() -> bool:
        breaker = Breaker(LIMITS)
        with ThreadPoolExecutor(2) as pool, pytest.raises(ConnectionRefusedError):
            await breaker.call(pool, refused, DEADLINE_S)
        return breaker.is_open

    assert asyncio.run(failing())


def test_a_background_probe_closes_the_breaker_when_the_store_is_back() -> None:
    store = HungStore()

    async def scenario() -> list[bool]:
        breaker = Breaker(LIMITS)
        seen = []
        with ThreadPoolExecutor(4) as pool:
            breaker.trip("test")
            breaker.probe(pool, store.ping)  # store still down: stays open
            await asyncio.sleep(0.05)
            seen.append(breaker.is_open)
            store.resumed.set()
            breaker.probe(pool, store.ping)  # too soon after the last probe: not started
            await asyncio.sleep(0.05)
            seen.append(breaker.is_open)
            await asyncio.sleep(0.1)
            breaker.probe(pool, store.ping)
            await asyncio.sleep(0.05)
            seen.append(breaker.is_open)
        return seen

    assert asyncio.run(scenario()) == [True, True, False]


def test_one_breaker_per_reader() -> None:
    breakers = Breakers(LIMITS)
    one, other = HungStore(), HungStore()
    assert breakers.of(one) is breakers.of(one)
    assert breakers.of(one) is not breakers.of(other)
